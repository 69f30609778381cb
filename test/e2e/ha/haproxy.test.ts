// Two hook-servers behind Debian's haproxy on one PostgreSQL (docs/ha.md): kill -9 of one while
// signed deliveries go through at about 200 a second. The client retries a 5xx or a cut connection
// with the same delivery; every delivery ends answered 2xx, each made exactly one job (counted in
// the database), the answer names that job, and no job is built twice.
import { randomUUID } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { githubSignature, pushPayload, readRuns } from '../../fixtures/hooks/deliveries.ts';
import { startHaproxy } from '../../fixtures/haproxy.ts';
import { startPostgres } from '../../fixtures/postgres.ts';
import { waitFor, type Server } from '../../_helpers/common.ts';
import { queueConfig, SECRET, startNode, startWorker, worldEnv } from '../../fixtures/workers.ts';

const RATE = 200;
const SECONDS = 4;
const REPOS = Array.from({ length: 10 }, (_, i) => `octo/r${i}`);

interface Outcome {
  delivery: string;
  first: number;
  status: number;
  job?: string;
  tries: number;
  /** The last answer's `error` (hook-server's JSON) or its first line (haproxy's page). */
  said?: string;
}

/**
 * One delivery through `url`, sent again (same id, same body) after a 5xx or a cut connection,
 * after 0.3 s, then twice as long each time up to 2 s (10 tries, about 13 s), as a forge would.
 */
async function deliver(url: string, delivery: string, body: string, signature: string): Promise<Outcome> {
  let first = 0;
  for (let tries = 1; ; tries++) {
    let status = 0;
    let json: { job?: string; error?: string } = {};
    let said: string | undefined;
    try {
      const res = await fetch(`${url}/hooks/github`, {
        method: 'POST',
        body,
        headers: {
          'Content-Type': 'application/json',
          'X-GitHub-Event': 'push',
          'X-GitHub-Delivery': delivery,
          'X-Hub-Signature-256': signature,
        },
        signal: AbortSignal.timeout(15_000),
      });
      status = res.status;
      const text = await res.text();
      try {
        json = JSON.parse(text);
      } catch {
        said = text.split('\n').find((line) => line.trim());
      }
      said = json.error ?? said;
    } catch (error) {
      status = 0; // the connection was cut
      said = String(error);
    }
    first ||= status || -1;
    if ((status >= 200 && status < 300) || tries === 10) return { delivery, first, status, job: json.job, tries, said };
    await new Promise((r) => setTimeout(r, Math.min(2000, 300 * 2 ** (tries - 1))));
  }
}

test(`kill -9 of a hook-server while ${RATE} deliveries/s go through haproxy: each 2xx is one job, none built twice`, async () => {
  const pg = await startPostgres();
  if (!pg) return;
  const env = worldEnv(pg);
  const repos = Object.fromEntries(REPOS.map((r) => [r, {}]));
  const nodes: Server[] = [];
  for (const name of ['a', 'b']) nodes.push(await startNode(name, repos, env));
  const [a, b] = nodes;
  const w = queueConfig('worker', repos, { concurrency: 4 });
  const worker = await startWorker(w.config, 'w', env);
  const haproxy = await startHaproxy([
    { name: 'a', port: a.port },
    { name: 'b', port: b.port },
  ]);
  try {
    if (!haproxy) return;
    // Both nodes in service before the load: haproxy answers from each in turn.
    await waitFor(
      async () => {
        const seen = new Set<string>();
        for (let i = 0; i < 4; i++) seen.add((await (await fetch(`${haproxy.url}/healthz`)).json()).node);
        return seen.size === 2;
      },
      { what: 'haproxy to use both nodes' },
    );
    const sends: Array<Promise<Outcome>> = [];
    const total = RATE * SECONDS;
    const startedAt = Date.now();
    let killedAt = 0;
    for (let i = 0; i < total; i++) {
      const due = startedAt + (i * 1000) / RATE;
      if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
      if (!killedAt && Date.now() - startedAt > 1500) {
        a.child.kill('SIGKILL');
        killedAt = Date.now();
      }
      const body = JSON.stringify(
        pushPayload(REPOS[i % REPOS.length], { sha: (i + 1).toString(16).padStart(40, 'c') }),
      );
      sends.push(deliver(haproxy.url, randomUUID(), body, await githubSignature(SECRET, body)));
    }
    const outcomes = await Promise.all(sends);
    const sentFor = (Date.now() - startedAt) / 1000;
    const firstFailed = outcomes.filter((o) => o.first < 200 || o.first >= 500);
    console.log(
      `  ${total} deliveries in ${sentFor.toFixed(1)} s; ${firstFailed.length} got a 5xx or a cut connection first and were retried; ${outcomes.filter((o) => o.status === 202).length} answered 202, ${outcomes.filter((o) => o.status === 200).length} 200 (a retry of a committed one)`,
    );
    assert.equal(
      outcomes.filter((o) => o.status < 200 || o.status >= 300),
      [],
      'every delivery answered 2xx in the end',
    );
    const keys = outcomes.map((o) => `'${o.delivery}'`).join(',');
    const rows = await pg.sql(
      `SELECT record->>'deliveryId', string_agg(id, ',') FROM shipkit.jobs WHERE record->>'deliveryId' IN (${keys}) GROUP BY 1`,
    );
    const jobOf = new Map(rows.split('\n').map((line) => line.split('|') as [string, string]));
    assert.is(jobOf.size, total, 'each delivery made a job');
    for (const o of outcomes) {
      assert.not.match(jobOf.get(o.delivery)!, ',', `delivery ${o.delivery} made one job, not more`);
      assert.is(o.job, jobOf.get(o.delivery), 'the answer names the job the database holds');
    }
    await waitFor(
      async () => (await pg.sql(`SELECT count(*) FROM shipkit.jobs WHERE state IN ('queued', 'running')`)) === '0',
      { timeoutMs: 60_000, what: 'every job to be built or superseded' },
    );
    const started = readRuns(w.dir).started;
    assert.is(new Set(started).size, started.length, 'no job was built twice');
    assert.ok(started.length >= REPOS.length, 'the newest push of each repo was built');
  } finally {
    await haproxy?.stop();
    await worker.stop();
    await b.stop();
    await a.stop();
  }
});

test.run();
