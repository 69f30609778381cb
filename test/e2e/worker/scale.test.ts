// 10,000 queued jobs and 10,000 fleet hosts in one PostgreSQL, three hook-servers on it
// (docs/ha.md): each one's status page, /jobs, GET /fleet/APP and /healthz answer from its memory,
// whole and right. The jobs are queued through the real enqueue path (16 at once, group-committed),
// whose cost per job must not grow with the jobs queued (it did: 1,072 jobs/s at first, 209 at 6,000).
// Answer times are printed, not asserted: a timed test fails on a loaded machine (CI saw a 237 ms
// median at load 20); speed is for bench/.
import { performance } from 'node:perf_hooks';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../../lib/core/log.ts';
import { resolveQueueUrl } from '../../../lib/db/connect.ts';
import { PgJobQueue } from '../../../lib/jobs/pg/queue.ts';
import { appendFileSync } from 'node:fs';
import { signRequest } from '../../../lib/http/signing.ts';
import { startPostgres } from '../../fixtures/postgres.ts';
import { queueConfig, startHookServer, TOKEN, worldEnv } from '../../fixtures/workers.ts';
import type { Server } from '../../_helpers/common.ts';

const JOBS = 10_000;
const HOSTS = 10_000;
const FLEET = 'fleet-scale-secret';
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

test(`${JOBS.toLocaleString('en')} queued jobs and ${HOSTS.toLocaleString('en')} fleet hosts, 3 nodes: each one's status page, /jobs, /fleet and /healthz answer whole`, async () => {
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

    // The hosts as reports leave them (a row each), written at once rather than signed one by one.
    await pg.sql(`INSERT INTO shipkit.fleet_hosts (app, host, seq, at, entry)
      SELECT 'web', md5(i::text), 3, 1764000000000, jsonb_build_object('host', md5(i::text), 'version',
        '1.1', 'previous', '1.0', 'seq', 3, 'bucket', i % 100, 'claimed_bucket', i % 100, 'result',
        CASE WHEN i % 50 = 0 THEN 'failed' ELSE 'updated' END, 'reason', '', 'seconds', 1, 'at', 1764000000000)
      FROM generate_series(1, ${HOSTS}) AS i`);

    const nodes: Server[] = [];
    for (const name of ['a', 'b', 'c']) {
      const { config } = queueConfig(name, { 'octo/site': {} }, { concurrency: 0 });
      appendFileSync(config, 'fleet:\n  web:\n    secret: env:FLEET_WEB\n');
      nodes.push(await startHookServer(config, worldEnv(pg, { FLEET_WEB: FLEET })));
    }
    try {
      const auth = { Authorization: `Bearer ${TOKEN}` };
      const checks: Array<[string, string, () => Record<string, string>, (body: string) => void]> = [
        [
          'status page',
          '/',
          () => auth,
          (body) => {
            assert.match(body, `(${JOBS} jobs)`);
            assert.match(body, `(${HOSTS} hosts)`);
          },
        ],
        ['GET /jobs?limit=50', '/jobs?limit=50', () => auth, (body) => assert.is(JSON.parse(body).jobs.length, 50)],
        [
          'GET /fleet/web?limit=10000 (a page of every host)',
          '/fleet/web?limit=10000',
          () => signRequest(FLEET, 'GET', '/fleet/web?limit=10000'),
          (body) => assert.equal([JSON.parse(body).hosts.length, JSON.parse(body).total], [HOSTS, HOSTS]),
        ],
        [
          'GET /fleet/web?step=100 (the counts release rollout waits on)',
          '/fleet/web?step=100&version=9.9',
          () => signRequest(FLEET, 'GET', '/fleet/web?step=100&version=9.9'),
          (body) => assert.is(JSON.parse(body).counts.expected, HOSTS),
        ],
        ['/healthz', '/healthz', () => ({}), (body) => assert.is(JSON.parse(body).queued, JOBS)],
      ];
      for (const [n, node] of nodes.entries())
        for (const [what, url, headers, check] of checks) {
          const times: number[] = [];
          for (let i = 0; i < 5; i++) {
            const t0 = performance.now();
            const res = await fetch(node.url + url, { headers: headers() });
            const body = await res.text();
            times.push(performance.now() - t0);
            assert.is(res.status, 200, `${what} on node ${n + 1}: ${body.slice(0, 200)}`);
            check(body);
          }
          console.log(
            `node ${n + 1}, ${what}: median ${median(times).toFixed(1)} ms, max ${Math.max(...times).toFixed(1)} ms over 5 (printed, not asserted)`,
          );
        }
    } finally {
      for (const node of nodes) assert.is(await node.stop(), 0, node.output());
    }
  } finally {
    await pg.stop();
  }
});

test.run();
