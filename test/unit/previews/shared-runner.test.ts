// Previews with `queue:` (lib/previews/shared-runner.ts): two nodes on one real PostgreSQL, each
// with a stand-in runner on its own DATA. Events taken by either node reach the leader's runner
// once and in order; the other node answers `queued`, lists the leader's records and refuses to act;
// when the lead moves, the old node tears its previews down and the new one makes each open pull
// request's again from its last event, with its comment's id carried over.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { createLogger } from '../../../lib/core/log.ts';
import { WorkError } from '../../../lib/core/errors.ts';
import { ensureSchema } from '../../../lib/db/schema.ts';
import type { PullRequestEvent } from '../../../lib/previews/event.ts';
import { SharedPreviews, type RunnerLike } from '../../../lib/previews/shared-runner.ts';
import { PreviewStore, type PreviewRecord } from '../../../lib/previews/store.ts';
import { prEvent } from '../../fixtures/previews/events.ts';
import { startPostgres, type Postgres } from '../../fixtures/postgres.ts';
import { tmpDir, waitFor } from '../../_helpers/common.ts';

let db: Postgres | undefined;
let pool: pg.Pool;
const log = createLogger({ stream: { write: () => true } as unknown as NodeJS.WritableStream });

/** A runner that keeps records in DATA as the real one does, and counts what it was handed. */
class FakeRunner implements RunnerLike {
  readonly store: PreviewStore;
  readonly handled: PullRequestEvent[];
  constructor(data: string, handled: PullRequestEvent[]) {
    this.store = new PreviewStore(data);
    this.handled = handled;
  }
  async start(): Promise<void> {
    await this.store.load();
  }
  async close(): Promise<void> {}
  list(): PreviewRecord[] {
    return this.store.list();
  }
  async handle(event: PullRequestEvent) {
    this.handled.push(event);
    const name = `pr-${event.pr}`;
    const known = this.store.get(event.repo, event.pr);
    if (event.action === 'closed') {
      if (!known) return { name, state: 'ignored' as const, reason: 'none' };
      await this.store.put({ ...known, state: 'torn down' });
      return { name, state: 'torn down' as const };
    }
    const since = new Date().toISOString();
    await this.store.put({
      commentId: '9',
      ...known,
      ...{ repo: event.repo, pr: event.pr, name, head: event.head.sha, headRef: '', headRepo: '', cloneUrl: '' },
      ...{ fromFork: false, title: '', prUrl: '', state: 'live', since, pushed: since },
    });
    return { name, state: 'building' as const };
  }
  approve = async () => this.store.list()[0];
  rebuild = async () => this.store.list()[0];
  log = async (repo: string, pr: number) => `the log of ${repo}#${pr} on this node`;
  async remove(repo: string, pr: number, why: string) {
    await this.store.put({ ...this.store.get(repo, pr)!, state: 'torn down', reason: why });
    return this.store.get(repo, pr)!;
  }
}

let leader = 'a';

function node(name: string) {
  const data = tmpDir('skp-shared-');
  const handled: PullRequestEvent[] = [];
  const previews = new SharedPreviews({
    db: pool,
    node: name,
    leads: () => leader === name,
    stillLeads: async () => leader === name,
    data,
    newRunner: () => new FakeRunner(data, handled),
    log,
    everyMs: 50,
    settleMs: 0,
  });
  previews.start();
  return { previews, handled, data };
}

test.before(async () => {
  db = await startPostgres();
  if (!db) return;
  pool = new pg.Pool({ connectionString: db.url, max: 4 });
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

test('one runner, on the leader, takes every event once and in order; the lead moves with the previews', async () => {
  if (!db) return;
  const a = node('a');
  const b = node('b');
  try {
    const queued = await b.previews.handle(prEvent(1, 'opened', 'a'));
    assert.equal([queued.name, queued.state], ['pr-1', 'queued']);
    assert.match(queued.reason!, /run by the leading hook-server/);
    await waitFor(() => a.handled.length === 1, { what: "the follower's event on the leader" });
    // The forge's retry of the same delivery, through the load balancer to the leader.
    const again = await a.previews.handle(prEvent(1, 'opened', 'a'));
    assert.equal([again.state, again.reason], ['live', 'this event was taken before']);
    const pushed = await a.previews.handle(prEvent(1, 'synchronize', 'b'));
    assert.is(pushed.state, 'building', "the leader's own event is taken at once");
    await b.previews.handle(prEvent(2, 'opened', 'c'));
    await b.previews.handle(prEvent(2, 'closed', 'c'));
    await waitFor(() => a.handled.length === 4, { what: 'pr-2 opened and closed' });
    assert.equal(
      a.handled.map((e) => `${e.pr} ${e.action}`),
      ['1 opened', '1 synchronize', '2 opened', '2 closed'],
    );
    assert.equal(b.handled, [], 'the follower runs nothing');
    // The leader copies its records to the database every round: wait for the last of them.
    await waitFor(() => b.previews.list().find((r) => r.pr === 2)?.state === 'torn down', {
      what: "the leader's records on the follower",
    });
    assert.equal(
      b.previews.list().map((r) => [r.pr, r.state]),
      [
        [2, 'torn down'],
        [1, 'live'],
      ],
    );
    try {
      await b.previews.approve('octo/site', 1, 'me');
      assert.unreachable('approved on a follower');
    } catch (error) {
      assert.instance(error, WorkError);
      assert.match((error as Error).message, /run by the leading hook-server/);
    }

    leader = 'b';
    await waitFor(() => b.handled.length === 1, { what: 'pr-1 made again on the new leader' });
    assert.equal([b.handled[0].pr, b.handled[0].action, b.handled[0].head.sha], [1, 'synchronize', 'b'.repeat(40)]);
    // The runner counts an event before it has written its record: wait for the write.
    const kept = await waitFor(
      async () => {
        const record = (await new PreviewStore(b.data).load()).get('octo/site', 1);
        return record?.state === 'live' ? record : undefined;
      },
      { what: 'pr-1 live on the new leader' },
    );
    assert.equal([kept?.state, kept?.commentId], ['live', '9'], "the comment's id carried over");
    await waitFor(async () => (await new PreviewStore(a.data).load()).open().length === 0, {
      what: 'the old leader torn down',
    });
    assert.is(
      (await new PreviewStore(a.data).load()).get('octo/site', 1)?.reason,
      'another hook-server runs the previews',
    );
  } finally {
    await a.previews.close();
    await b.previews.close();
  }
});

test.run();
