// npm run bench:workers — build workers on PostgreSQL (docs/design.md), in one run on a
// throwaway PostgreSQL (test/fixtures/postgres.ts), builds stood in for by fake-build.sh:
//  (a) webhook-to-job-start latency: POST of a push → the job's `started` time (recorded by
//      whoever starts it, same clock), N pushes one after another, with the local journal
//      (hook-server runs the job) and with queue: (hook-server with concurrency 0, one worker);
//  (b) builds per minute: 20 repos, one push each, builds that wait 2 s on I/O (sleep), with 1,
//      2 and 4 workers of concurrency 1;
//  (c) deliveries acked per second with autocannon (signed pushes, fresh delivery ids) against
//      hook-server with the local journal, with queue:, and Debian's webhook 2.8 (if installed),
//      which verifies the same HMAC and runs /bin/true.
//   tsx bench/workers.ts [--pushes N] [--seconds S] [--connections C] [--sleep SEC]
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import minimist from 'minimist';
import { sign } from '@octokit/webhooks-methods';
import { deliverGithub, pushPayload, writeConfig } from '../test/fixtures/hooks/deliveries.ts';
import { startPostgres } from '../test/fixtures/postgres.ts';
import {
  queueConfig,
  SECRET,
  startHookServer,
  startWorker,
  waitForState,
  worldEnv,
  type Worker,
} from '../test/fixtures/workers.ts';
import { tmpDir, type Server } from '../test/_helpers/common.ts';
import { startWebhookPeer } from './webhook-peer.ts';

const args = minimist(process.argv.slice(2), { string: ['pushes', 'seconds', 'connections', 'sleep'] });
const PUSHES = Number(args.pushes ?? 40);
const SECONDS = Number(args.seconds ?? 5);
const CONNECTIONS = Number(args.connections ?? 50);
const SLEEP = Number(args.sleep ?? 2);
const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];

// PostgreSQL's defaults: a commit waits for its WAL fsync, as the journal's 202 waits for its fsync.
const pg = await startPostgres({ durable: true });
if (!pg) process.exit(0);
const env = worldEnv(pg);

/** Webhook-to-start of N pushes to one repo, one after another (each finished before the next). */
async function latency(server: Server): Promise<number[]> {
  const ms: number[] = [];
  for (let i = 0; i < PUSHES; i++) {
    const sha = ((i % 9) + 1).toString().repeat(40);
    const t0 = Date.now();
    const res = await deliverGithub(server.url, 'push', pushPayload('octo/site', { sha }), SECRET);
    const job = await waitForState(server, res.json.job, ['succeeded', 'failed']);
    ms.push(Date.parse(job.started) - t0);
  }
  return ms;
}

async function benchLatency(): Promise<void> {
  const dir = tmpDir();
  const local = await startHookServer(writeConfig(dir, { repos: { 'octo/site': {} } }), env);
  const localMs = await latency(local);
  await local.stop();
  const server = await startHookServer(queueConfig('lat-server', { 'octo/site': {} }, { concurrency: 0 }).config, env);
  const worker = await startWorker(queueConfig('lat-worker', { 'octo/site': {} }).config, 'w1', env);
  const pgMs = await latency(server);
  await worker.stop();
  await server.stop();
  console.log(`\n(a) webhook → job start, ${PUSHES} pushes one after another`);
  console.log('| queue | p50 ms | p90 ms | max ms |\n|---|---|---|---|');
  for (const [name, xs] of [
    ['local journal (hook-server runs it)', localMs],
    ['PostgreSQL, one `shipkit worker`', pgMs],
  ] as const) {
    console.log(`| ${name} | ${pct(xs, 0.5)} | ${pct(xs, 0.9)} | ${Math.max(...xs)} |`);
  }
  console.log(`added at p50: ${pct(pgMs, 0.5) - pct(localMs, 0.5)} ms (goal ≤ 50)`);
}

/** 20 repos, one push each, with `count` workers; builds per minute. */
async function buildsPerMinute(count: number): Promise<number> {
  const repos = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`octo/r${i}`, {}]));
  const server = await startHookServer(queueConfig(`bpm-server-${count}`, repos, { concurrency: 0 }).config, env);
  const workers: Worker[] = [];
  for (let i = 0; i < count; i++) {
    const { dir, config } = queueConfig(`bpm-${count}-${i}`, repos);
    writeFileSync(path.join(dir, 'sleep'), String(SLEEP));
    workers.push(await startWorker(config, `w${i}`, env));
  }
  const t0 = Date.now();
  const sent = await Promise.all(
    Object.keys(repos).map((repo) => deliverGithub(server.url, 'push', pushPayload(repo), SECRET)),
  );
  await Promise.all(sent.map((r) => waitForState(server, r.json.job, ['succeeded'], 300_000)));
  const minutes = (Date.now() - t0) / 60_000;
  for (const w of workers) await w.stop();
  await server.stop();
  return 20 / minutes;
}

async function benchThroughput(): Promise<void> {
  const rates: Array<[string, number]> = [];
  for (const count of [1, 2, 4]) rates.push([`${count} worker${count > 1 ? 's' : ''}`, await buildsPerMinute(count)]);
  console.log(`\n(b) 20 repos, one push each, builds waiting ${SLEEP} s on I/O`);
  console.log('| workers | builds/min | × one worker |\n|---|---|---|');
  for (const [name, rate] of rates)
    console.log(`| ${name} | ${rate.toFixed(1)} | ${(rate / rates[0][1]).toFixed(2)} |`);
}

async function load(url: string): Promise<{ rps: number; p50: number; p99: number; non2xx: number }> {
  const { default: autocannon } = (await import('autocannon' as string)) as { default: any };
  const body = JSON.stringify(pushPayload('octo/site'));
  const signature = await sign(SECRET, body);
  const result = await new Promise<any>((resolve, reject) => {
    autocannon(
      {
        // A new connection every 500 requests (hook-server closes one after 1,000): as bench/hooks.ts.
        url,
        method: 'POST',
        connections: CONNECTIONS,
        duration: SECONDS,
        body,
        reconnectRate: 500,
        headers: { 'content-type': 'application/json', 'x-github-event': 'push', 'x-hub-signature-256': signature },
        requests: [
          {
            setupRequest: (req: any) => ({
              ...req,
              headers: { ...req.headers, 'x-github-delivery': crypto.randomUUID() },
            }),
          },
        ],
      },
      (error: Error | null, res: any) => (error ? reject(error) : resolve(res)),
    );
  });
  // Acknowledged deliveries (2xx) per second only.
  return {
    rps: result['2xx'] / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
  };
}

async function benchAcks(): Promise<void> {
  const rows: Array<[string, Awaited<ReturnType<typeof load>>]> = [];
  const quiet = {
    ...env,
    SHIPKIT_BUILD_COMMAND: '/bin/true',
    SHIPKIT_RELEASE_COMMAND: '/bin/true',
    LOG_FORMAT: 'json',
  };
  const local = await startHookServer(writeConfig(tmpDir(), { repos: { 'octo/site': {} } }), quiet);
  rows.push(['hook-server, local journal', await load(`${local.url}/hooks/github`)]);
  await local.stop();
  const server = await startHookServer(
    queueConfig('ack-server', { 'octo/site': {} }, { concurrency: 0 }).config,
    quiet,
  );
  rows.push(['hook-server, queue: PostgreSQL', await load(`${server.url}/hooks/github`)]);
  await server.stop();
  const webhook = await startWebhookPeer(SECRET);
  if (webhook) {
    rows.push(['webhook 2.8 (runs /bin/true)', await load(webhook.url)]);
    webhook.stop();
  }
  console.log(`\n(c) deliveries acked per second: autocannon, ${CONNECTIONS} connections, ${SECONDS} s, one repo`);
  console.log('| server | req/s | p50 ms | p99 ms | non-2xx |\n|---|---|---|---|---|');
  for (const [name, r] of rows) console.log(`| ${name} | ${r.rps.toFixed(0)} | ${r.p50} | ${r.p99} | ${r.non2xx} |`);
}

try {
  await benchLatency();
  await benchThroughput();
  await benchAcks();
} finally {
  await pg.stop();
}
