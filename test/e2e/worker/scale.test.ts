// 10,000 queued jobs in the PostgreSQL queue (docs/design.md, issue 22): hook-server's status page,
// the read API and /healthz answer from hook-server's in-memory mirror of the records
// (lib/jobs/pg/mirror.ts), whole and right. The jobs are queued through the real enqueue path
// (PgJobQueue, one transaction each). The answer times are printed, not asserted: a timed test
// fails on a loaded machine (CI saw a 237 ms median at load 20); speed is for bench/.
import { performance } from 'node:perf_hooks';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../../lib/core/log.ts';
import { resolveQueueUrl } from '../../../lib/jobs/pg/connect.ts';
import { PgJobQueue } from '../../../lib/jobs/pg/queue.ts';
import { startPostgres } from '../../fixtures/postgres.ts';
import { queueConfig, startHookServer, TOKEN, worldEnv } from '../../fixtures/workers.ts';

const JOBS = 10_000;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

test(`${JOBS.toLocaleString('en')} queued jobs: the status page, /jobs and /healthz answer from the mirror, whole`, async () => {
  const pg = await startPostgres();
  if (!pg) return;
  try {
    const queue = await PgJobQueue.open({
      db: await resolveQueueUrl(pg.url),
      repos: ['octo/site'],
      concurrency: 0,
      run: async () => ({ exit: 0 }),
      log: silentLogger,
      node: 'scale',
    });
    const started = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        // Releases: a newer one never supersedes an older one, so every job stays queued.
        while (next < JOBS) {
          const i = next++;
          await queue.enqueue({ repo: 'octo/site', kind: 'release', tag: `v1.0.${i}`, deliveryId: `delivery-${i}` });
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    console.log(`enqueued ${JOBS} jobs in ${seconds.toFixed(1)} s: ${(JOBS / seconds).toFixed(0)} jobs/s (16 at once)`);
    await queue.stop({ graceMs: 0, killGroup: async () => {} });

    const server = await startHookServer(
      queueConfig('server', { 'octo/site': {} }, { concurrency: 0 }).config,
      worldEnv(pg),
    );
    try {
      const health = await (await fetch(`${server.url}/healthz`)).json();
      assert.is(health.queued, JOBS);
      const auth = { Authorization: `Bearer ${TOKEN}` };
      const checks: Array<[string, string, (body: string) => void]> = [
        ['status page', '/', (body) => assert.match(body, `(${JOBS} jobs)`)],
        ['GET /jobs?limit=50', '/jobs?limit=50', (body) => assert.is(JSON.parse(body).jobs.length, 50)],
        ['/healthz', '/healthz', (body) => assert.is(JSON.parse(body).queued, JOBS)],
      ];
      for (const [what, url, check] of checks) {
        const times: number[] = [];
        for (let i = 0; i < 7; i++) {
          const t0 = performance.now();
          const res = await fetch(server.url + url, { headers: auth });
          const body = await res.text();
          times.push(performance.now() - t0);
          assert.is(res.status, 200, what);
          check(body);
        }
        console.log(
          `${what}: median ${median(times).toFixed(1)} ms, max ${Math.max(...times).toFixed(1)} ms over 7 (printed, not asserted)`,
        );
      }
    } finally {
      assert.is(await server.stop(), 0, server.output());
    }
  } finally {
    await pg.stop();
  }
});

test.run();
