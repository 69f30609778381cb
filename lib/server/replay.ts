// `shipkit deliveries`: with `queue:`, the deliveries kept in the database (shipkit.deliveries,
// docs/ha.md) listed, and one replayed as a new job. Its stored body is read again as hook-server
// reads a delivery (its signature was checked when it came), held against this shipkit.yml (the
// repo named there, a push to its branch) and queued under a delivery id of its own.
import type { ShipkitConfig } from '../config/shipkit-yml.ts';
import { ValidationError } from '../core/errors.ts';
import { newJobRecord, type EnqueueResult } from '../jobs/job-queue.ts';
import { type QueueConnection } from '../jobs/pg/connect.ts';
import { inTransaction } from '../db/connect.ts';
import { commitBatch } from '../jobs/pg/enqueue.ts';
import type { Queryable } from '../db/connect.ts';
import { newJobOf } from './admit.ts';
import { normaliseEvent, parsePayload, type Forge } from './webhooks.ts';
import { appendAuditRows } from '../audit/pg-store.ts';
import type { NewAuditEntry } from '../audit/chain.ts';

/** A delivery as `deliveries list` shows it (its body stays in the database). */
export interface StoredDelivery {
  source: string;
  id: string;
  job: string;
  repo: string;
  event: string;
  received: string;
  bytes: number;
}

const COLUMNS = `source, delivery_id, job_id, repo, event, received, octet_length(body) AS bytes`;

function storedOf(r: Record<string, unknown>): StoredDelivery {
  return {
    source: String(r.source),
    id: String(r.delivery_id),
    job: String(r.job_id),
    repo: String(r.repo),
    event: String(r.event),
    received: new Date(r.received as string).toISOString(),
    bytes: Number(r.bytes),
  };
}

/** The newest `limit` deliveries kept, newest first (of `repo` only, when given). */
export async function listDeliveries(
  db: Queryable,
  { repo, limit = 50 }: { repo?: string; limit?: number } = {},
): Promise<StoredDelivery[]> {
  const { rows } = await db.query(
    `SELECT ${COLUMNS} FROM shipkit.deliveries WHERE $1::text IS NULL OR repo = $1 ORDER BY received DESC, delivery_id LIMIT $2`,
    [repo ?? null, limit],
  );
  return rows.map(storedOf);
}

/** The delivery `id` names: a delivery id, or the id of the job it made. */
async function findDelivery(db: Queryable, id: string): Promise<StoredDelivery & { format: string; body: Buffer }> {
  const { rows } = await db.query(
    `SELECT ${COLUMNS}, format, body FROM shipkit.deliveries WHERE delivery_id = $1 OR job_id = $1 ORDER BY received`,
    [id],
  );
  if (rows.length === 0)
    throw new ValidationError(
      `No delivery ${JSON.stringify(id)} is kept: give a delivery id or a job id from \`shipkit ` +
        `deliveries list\` (deliveries are kept 14 days).`,
    );
  if (rows.length > 1)
    throw new ValidationError(
      `${JSON.stringify(id)} names ${rows.length} deliveries ` +
        `(${rows.map((r) => `${r.source} → job ${r.job_id}`).join(', ')}): give the job id instead.`,
    );
  return { ...storedOf(rows[0]), format: String(rows[0].format), body: rows[0].body as Buffer };
}

/** Who replays, and from which machine, for the audit trail (shipkit.audit). */
export interface ReplayBy {
  actor: string;
  node: string;
}

/**
 * Queue the delivery `id` names again as a new job, committed before this resolves, with its
 * entry in the audit trail in the same transaction. Refused (ValidationError, nothing queued, the
 * refusal recorded) when its body is no push or release, its repo is not in `config`, or its push
 * is to another branch than the one the repo builds.
 */
export async function replayDelivery(
  conn: QueueConnection,
  config: ShipkitConfig,
  id: string,
  now: Date = new Date(),
  by: ReplayBy = { actor: 'cli', node: 'unknown' },
): Promise<{ of: StoredDelivery; result: EnqueueResult }> {
  const audit = (action: NewAuditEntry['action'], subject: string | null, detail: Record<string, unknown>) => ({
    at: now.toISOString(),
    action,
    actor: by.actor,
    from: 'local',
    node: by.node,
    subject,
    detail,
  });
  let stored: Awaited<ReturnType<typeof findDelivery>> | undefined;
  try {
    stored = await findDelivery(conn.pool, id);
    const { job, raw } = replayable(stored, config, now);
    return await inTransaction(conn.pool, async (c) => {
      const outcome = await commitBatch(c, conn.boss, [{ job, raw }]);
      const result = outcome.results[0];
      const detail = { delivery: stored!.id, of_job: stored!.job, job: result.job.id };
      await appendAuditRows(c, [audit('delivery.replay', job.repo, detail)]);
      return { of: stored!, result };
    });
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    const detail = { delivery: stored?.id ?? id, reason: error.message };
    await inTransaction(conn.pool, (c) =>
      appendAuditRows(c, [audit('delivery.replay_refused', stored?.repo ?? null, detail)]),
    );
    throw error;
  }
}

/** The job a kept delivery makes again, or a ValidationError saying why it makes none. */
function replayable(stored: StoredDelivery & { format: string; body: Buffer }, config: ShipkitConfig, now: Date) {
  if (stored.body.length === 0)
    throw new ValidationError(`Delivery ${stored.id} was kept without its body: it cannot be replayed.`);
  const format = stored.format === 'form' ? 'form' : 'json';
  const meaning = normaliseEvent(stored.source as Forge, stored.event, parsePayload(stored.body, format));
  if (meaning.kind !== 'push' && meaning.kind !== 'release')
    throw new ValidationError(`Delivery ${stored.id} is a ${stored.event} event that makes no job: nothing to replay.`);
  const repo = config.repos.get(meaning.repo);
  if (!repo) throw new ValidationError(`Delivery ${stored.id} is for ${meaning.repo}, which is not in ${config.file}.`);
  if (meaning.kind === 'push' && meaning.branch !== repo.branch)
    throw new ValidationError(
      `Delivery ${stored.id} is a push to ${meaning.branch}; ${repo.name} builds ${repo.branch} (${config.file}).`,
    );
  // A delivery id of its own, so that the replay is not taken for a retry of the original.
  const delivery = `${stored.id.slice(0, 60)}.replay-${now.getTime().toString(36)}`;
  // An operator who replays wants a run: never answered "up to date" (lib/pipeline/up-to-date.ts).
  const input = { ...newJobOf(repo, meaning, { forge: stored.source, delivery }), force: true };
  const job = newJobRecord(input, 0, now.toISOString());
  return { job, raw: { event: stored.event, format, body: stored.body } as const };
}
