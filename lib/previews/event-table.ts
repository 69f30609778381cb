// The previews' two tables with `queue:` (docs/previews.md#with-several-hook-servers): every
// hook-server adds the pull request events it takes to shipkit.preview_events; the leader takes
// them one at a time in id order. shipkit.preview_prs keeps, per pull request, whether it is open,
// the last event that counted (a new leader makes the preview again from it) and the leader's record.
import type { Queryable } from '../db/connect.ts';
import type { PullRequestEvent } from './event.ts';
import type { PreviewRecord } from './store.ts';

/** An event not taken yet, and the last one that counted for its pull request (undefined: none). */
export interface QueuedEvent {
  id: number;
  event: PullRequestEvent;
  last?: PullRequestEvent;
}

/** A pull request open as far as the leader has taken its events. */
export interface OpenPullRequest {
  repo: string;
  pr: number;
  lastEvent?: PullRequestEvent;
  record?: PreviewRecord;
}

/** The newest records that GET /previews lists on a node that does not lead. */
const LISTED = 500;

/** `event` added to the end of the table by `node`: its id, and the node that leads now (if any). */
export async function addEvent(
  db: Queryable,
  event: PullRequestEvent,
  node: string,
): Promise<{ id: number; leader?: string }> {
  const { rows } = await db.query(
    `INSERT INTO shipkit.preview_events (repo, pr, event, node) VALUES ($1, $2, $3, $4)
     RETURNING id, (SELECT l.node FROM shipkit.leader l WHERE l.id = 1 AND l.pid IS NOT NULL) AS leader`,
    [event.repo, event.pr, JSON.stringify(event), node],
  );
  return { id: Number(rows[0].id), leader: rows[0].leader ?? undefined };
}

/** The oldest event not taken yet, with its pull request's last event that counted. */
export async function nextEvent(db: Queryable): Promise<QueuedEvent | undefined> {
  const { rows } = await db.query(
    `SELECT e.id, e.event, p.last_event FROM shipkit.preview_events e
     LEFT JOIN shipkit.preview_prs p ON p.repo = e.repo AND p.pr = e.pr ORDER BY e.id LIMIT 1`,
    [],
  );
  if (!rows.length) return undefined;
  return { id: Number(rows[0].id), event: rows[0].event, last: rows[0].last_event ?? undefined };
}

/**
 * Event `id` deleted; when it counted (it changed the preview, or closed the pull request), its
 * pull request's row says so in the same statement: open or not, and this its last event.
 */
export async function markTaken(db: Queryable, id: number, counted?: { open: boolean }): Promise<void> {
  if (!counted) {
    await db.query('DELETE FROM shipkit.preview_events WHERE id = $1', [id]);
    return;
  }
  await db.query(
    `WITH gone AS (DELETE FROM shipkit.preview_events WHERE id = $1 RETURNING repo, pr, event)
     INSERT INTO shipkit.preview_prs AS p (repo, pr, open, last_event) SELECT repo, pr, $2, event FROM gone
     ON CONFLICT (repo, pr) DO UPDATE SET open = $2, last_event = EXCLUDED.last_event, updated = now()`,
    [id, counted.open],
  );
}

/** Every pull request open as far as the events taken say, in the order of their numbers. */
export async function openPullRequests(db: Queryable): Promise<OpenPullRequest[]> {
  const { rows } = await db.query(
    'SELECT repo, pr, last_event, record FROM shipkit.preview_prs WHERE open ORDER BY repo, pr',
    [],
  );
  return rows.map((r) => ({
    repo: r.repo,
    pr: Number(r.pr),
    lastEvent: r.last_event ?? undefined,
    record: r.record ?? undefined,
  }));
}

/** The leader's records written over the ones kept (a pull request not seen yet is open unless torn down). */
export async function putRecords(db: Queryable, records: PreviewRecord[], node: string): Promise<void> {
  if (!records.length) return;
  await db.query(
    `INSERT INTO shipkit.preview_prs AS p (repo, pr, open, record, node)
     SELECT r->>'repo', (r->>'pr')::int, r->>'state' <> 'torn down', r, $2 FROM jsonb_array_elements($1::jsonb) r
     ON CONFLICT (repo, pr) DO UPDATE SET record = EXCLUDED.record, node = EXCLUDED.node, updated = now()`,
    [JSON.stringify(records), node],
  );
}

/** The records the leader keeps, newest change first (the newest LISTED of them). */
export async function listRecords(db: Queryable): Promise<PreviewRecord[]> {
  const { rows } = await db.query(
    `SELECT record FROM shipkit.preview_prs WHERE record IS NOT NULL ORDER BY record->>'since' DESC LIMIT $1`,
    [LISTED],
  );
  return rows.map((r) => r.record as PreviewRecord);
}

/** The node that leads now, as shipkit.leader names it (undefined: none, or it handed the lead over). */
export async function leadingNode(db: Queryable): Promise<string | undefined> {
  const { rows } = await db.query('SELECT node FROM shipkit.leader WHERE id = 1 AND pid IS NOT NULL', []);
  return rows[0]?.node ?? undefined;
}

/**
 * Whether `event` would do nothing `last` did not: the same push (opened, reopened, synchronize
 * of one head), a second close, the same label set again on the same head by the same login.
 * A forge's retry that reached two hook-servers is taken once.
 */
export function sameEffect(last: PullRequestEvent, event: PullRequestEvent): boolean {
  return effectOf(last) === effectOf(event);
}

function effectOf(event: PullRequestEvent): string {
  switch (event.action) {
    case 'closed':
    case 'merged':
      return 'closed';
    case 'labeled':
      return `labeled ${event.head.sha} ${event.label ?? ''} ${event.sender ?? ''}`;
    default:
      return `pushed ${event.head.sha}`;
  }
}
