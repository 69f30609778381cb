// The previews' tables with `queue:` (lib/previews/event-table.ts) on a real PostgreSQL: events are
// taken one at a time in id order beside their pull request's last event; a taken event that
// counted moves into its pull request's row in the same statement; records and the open pull
// requests read back; a forge's retry of one event is the same effect, a new head is not.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { ensureSchema } from '../../../lib/db/schema.ts';
import type { PullRequestEvent } from '../../../lib/previews/event.ts';
import {
  addEvent,
  leadingNode,
  listRecords,
  markTaken,
  nextEvent,
  openPullRequests,
  putRecords,
  sameEffect,
} from '../../../lib/previews/event-table.ts';
import type { PreviewRecord } from '../../../lib/previews/store.ts';
import { prEvent } from '../../fixtures/previews/events.ts';
import { startPostgres, type Postgres } from '../../fixtures/postgres.ts';

let db: Postgres | undefined;
let pool: pg.Pool;

const record = (pr: number, state: PreviewRecord['state'], since: string): PreviewRecord => ({
  repo: 'octo/site',
  pr,
  name: `pr-${pr}`,
  head: 'a'.repeat(40),
  headRef: 'topic',
  headRepo: 'octo/site',
  cloneUrl: 'https://example.com/octo/site.git',
  fromFork: false,
  title: 'A change',
  prUrl: 'https://example.com',
  state,
  since,
  pushed: since,
  commentId: '77',
});

test.before(async () => {
  db = await startPostgres();
  if (!db) return;
  pool = new pg.Pool({ connectionString: db.url, max: 3 });
  pool.on('error', () => undefined);
  const client = await pool.connect();
  try {
    await ensureSchema(client, 'test');
  } finally {
    client.release();
  }
});

test.after(async () => {
  await pool?.end();
  await db?.stop();
});

test('events are taken in id order, each with its pull request last event that counted', async () => {
  if (!db) return;
  const first = await addEvent(pool, prEvent(1, 'opened', 'a'), 'a');
  const second = await addEvent(pool, prEvent(1, 'synchronize', 'b'), 'b');
  assert.ok(second.id > first.id);
  assert.is(first.leader, undefined, 'no node leads');
  let next = await nextEvent(pool);
  assert.equal([next?.id, next?.event.action, next?.last], [first.id, 'opened', undefined]);
  await markTaken(pool, first.id, { open: true });
  next = await nextEvent(pool);
  assert.equal([next?.id, next?.last?.action, next?.last?.head.sha], [second.id, 'opened', 'a'.repeat(40)]);
  await markTaken(pool, second.id, { open: true });
  assert.is(await nextEvent(pool), undefined);
  const open = await openPullRequests(pool);
  assert.equal(
    open.map((p) => [p.pr, p.lastEvent?.action]),
    [[1, 'synchronize']],
  );
});

test('an event that did not count is deleted and changes nothing; a close ends the pull request', async () => {
  if (!db) return;
  const label = await addEvent(pool, prEvent(1, 'labeled', 'b', { label: 'bug' }), 'a');
  await markTaken(pool, label.id);
  assert.is((await openPullRequests(pool))[0].lastEvent?.action, 'synchronize');
  const closed = await addEvent(pool, prEvent(1, 'closed', 'b'), 'a');
  await markTaken(pool, closed.id, { open: false });
  assert.equal(await openPullRequests(pool), []);
  assert.is(await nextEvent(pool), undefined);
});

test("the leader's records are kept and listed newest first; a new pull request's row is open unless torn down", async () => {
  if (!db) return;
  await putRecords(
    pool,
    [record(2, 'live', '2024-01-02T00:00:00Z'), record(3, 'torn down', '2024-01-03T00:00:00Z')],
    'a',
  );
  await putRecords(pool, [], 'a');
  assert.equal(
    (await listRecords(pool)).map((r) => [r.pr, r.state]),
    [
      [3, 'torn down'],
      [2, 'live'],
    ],
  );
  const open = await openPullRequests(pool);
  assert.equal(
    open.map((p) => [p.pr, p.record?.commentId, p.lastEvent]),
    [[2, '77', undefined]],
  );
});

test('the leading node is named from shipkit.leader while it holds the lead', async () => {
  if (!db) return;
  assert.is(await leadingNode(pool), undefined);
  await pool.query(
    "INSERT INTO shipkit.leader (id, term, node, since, renewed, pid) VALUES (1, 1, 'b', now(), now(), 1)",
  );
  assert.is(await leadingNode(pool), 'b');
  assert.is((await addEvent(pool, prEvent(4, 'opened', 'c'), 'a')).leader, 'b');
  await pool.query('UPDATE shipkit.leader SET pid = NULL');
  assert.is(await leadingNode(pool), undefined, 'handed over');
});

test('sameEffect: a retry of one event, not a new head, a reopening or another label', () => {
  const cases: Array<[PullRequestEvent, PullRequestEvent, boolean]> = [
    [prEvent(1, 'opened', 'a'), prEvent(1, 'opened', 'a'), true],
    [prEvent(1, 'opened', 'a'), prEvent(1, 'synchronize', 'a'), true],
    [prEvent(1, 'opened', 'a'), prEvent(1, 'synchronize', 'b'), false],
    [prEvent(1, 'closed', 'a'), prEvent(1, 'reopened', 'a'), false],
    [prEvent(1, 'closed', 'a'), prEvent(1, 'merged', 'a'), true],
    [prEvent(1, 'opened', 'a'), prEvent(1, 'labeled', 'a', { label: 'preview' }), false],
    [prEvent(1, 'labeled', 'a', { label: 'preview' }), prEvent(1, 'labeled', 'a', { label: 'preview' }), true],
    [prEvent(1, 'labeled', 'a', { label: 'preview' }), prEvent(1, 'labeled', 'b', { label: 'preview' }), false],
    [
      prEvent(1, 'labeled', 'a', { label: 'preview', sender: 'x' }),
      prEvent(1, 'labeled', 'a', { label: 'preview' }),
      false,
    ],
  ];
  for (const [last, event, same] of cases)
    assert.is(sameEffect(last, event), same, `${last.action} then ${event.action}`);
});

test.run();
