// npm run bench:ui — the status page and its live log, against a real hook-server child:
//  (a) render time of `GET /` and of a job page with 1,000 jobs in the journal, beside the same
//      50 jobs as JSON (`GET /jobs?limit=50`): median and p95 of N sequential requests;
//  (b) the server's memory (VmRSS) idle, then with 50 clients following a running job's log
//      over text/event-stream, and the cost per follower;
//  (c) what notifying and reporting add to the jobs: the gap from one job's end to the next
//      one's start (journal times), with a notify webhook and a commit-status API that both hang
//      (accept the connection, never answer), beside a config with neither. Goal: 0.
//   tsx bench/status-page.ts [--runs N] [--followers N] [--jobs N]
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import minimist from 'minimist';
import { openEventStream, type EventStream } from '../test/fixtures/hooks/event-stream.ts';
import { seedJournal, seededJob } from '../test/fixtures/hooks/seeded-journal.ts';
import {
  FAKE_BUILD,
  deliverGithub,
  fetchJob,
  pushPayload,
  waitForJobState,
  writeConfig,
} from '../test/fixtures/hooks/deliveries.ts';
import { startScript, tmpDir } from '../test/_helpers/common.ts';

const args = minimist(process.argv.slice(2), { string: ['runs', 'followers', 'jobs'], boolean: ['only-memory'] });
const runs = Number(args.runs ?? 50);
const followers = Number(args.followers ?? 50);
const jobCount = Number(args.jobs ?? 10);
const SECRET = `secret-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const env = {
  HOOK_SECRET: SECRET,
  HOOK_TOKEN: TOKEN,
  SHIPKIT_BUILD_COMMAND: FAKE_BUILD,
  SHIPKIT_RELEASE_COMMAND: FAKE_BUILD,
  REPORT_TOKEN: 'bench-token',
  NOTIFY_SECRET: 'bench-notify-secret',
};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const p95 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil(xs.length * 0.95) - 1)];
const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The median of 15 VmRSS samples 200 ms apart (one sample moves with the garbage collector). */
async function settledRssMb(pid: number): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 15; i++) {
    samples.push(rssMb(pid));
    await sleep(200);
  }
  return median(samples);
}

/** N sequential GETs; times in ms and the body size. */
async function timeGets(url: string, accept: string): Promise<{ times: number[]; bytes: number }> {
  const times: number[] = [];
  let bytes = 0;
  for (let i = 0; i < runs + 3; i++) {
    const t0 = performance.now();
    const res = await fetch(url, { headers: { Accept: accept, Authorization: `Bearer ${TOKEN}` } });
    const body = await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`${url}: ${res.status}`);
    if (i >= 3) times.push(performance.now() - t0); // 3 warm-up requests
    bytes = body.byteLength;
  }
  return { times, bytes };
}

const fmt = (xs: number[]) => `median ${median(xs).toFixed(2)} ms, p95 ${p95(xs).toFixed(2)} ms`;

async function renderTimes(): Promise<void> {
  const dir = tmpDir('shipkit-bench-ui-');
  const config = writeConfig(dir, { repos: { 'octo/site': {}, 'octo/other': {} } });
  seedJournal(path.join(dir, 'data'), 1000);
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env });
  try {
    const html = 'text/html';
    const page = await timeGets(`${server.url}/`, html);
    const job = await timeGets(`${server.url}/jobs/${seededJob(1000).id}`, html);
    const json = await timeGets(`${server.url}/jobs?limit=50`, 'application/json');
    console.log(`(a) ${runs} sequential requests each, 1,000 jobs in the journal, loopback:`);
    console.log(`    GET /                (HTML, 50 rows, ${(page.bytes / 1024).toFixed(0)} KB): ${fmt(page.times)}`);
    console.log(`    GET /jobs/ID         (HTML job page, ${(job.bytes / 1024).toFixed(0)} KB): ${fmt(job.times)}`);
    console.log(
      `    GET /jobs?limit=50   (JSON, same 50 jobs, ${(json.bytes / 1024).toFixed(0)} KB): ${fmt(json.times)}`,
    );
    console.log(`    status page / JSON list: ${(median(page.times) / median(json.times)).toFixed(2)}× (medians)`);
  } finally {
    await server.stop('SIGKILL');
  }
}

/** (b) A fresh server (no page renders before): idle, one job running, 50 followers, followers gone. */
async function followerMemory(): Promise<void> {
  const dir = tmpDir('shipkit-bench-ui-');
  const config = writeConfig(dir, { repos: { 'o/ticker': {} } });
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env });
  try {
    writeFileSync(path.join(dir, 'ticker-lines'), '2000');
    writeFileSync(path.join(dir, 'ticker-pause'), '0.05');
    await sleep(2000);
    const idle = await settledRssMb(server.child.pid!);
    const res = await deliverGithub(server.url, 'push', pushPayload('o/ticker'), SECRET);
    const id = String(res.json.job);
    await waitForJobState(server.url, TOKEN, id, ['running']);
    const running = await settledRssMb(server.child.pid!);
    const streams: EventStream[] = [];
    for (let i = 0; i < followers; i++)
      streams.push(
        await openEventStream(`${server.url}/jobs/${id}/log?follow=1`, { Authorization: `Bearer ${TOKEN}` }),
      );
    const mark = streams[0].received;
    await Promise.all(streams.map((s) => s.waitFor((x) => x.received > mark + 2000, 30_000)));
    const following = await settledRssMb(server.child.pid!);
    const lagged = streams.filter((s) => s.received < streams[0].received - 200).length;
    for (const s of streams) s.close();
    await sleep(1000);
    const after = await settledRssMb(server.child.pid!);
    console.log(
      `(b) hook-server VmRSS (median of 15 samples): idle ${idle.toFixed(1)} MB, one job running ${running.toFixed(1)} MB, ${followers} followers of its live log ${following.toFixed(1)} MB, followers gone ${after.toFixed(1)} MB`,
    );
    const perFollower = ((following - running) * 1024) / followers;
    console.log(
      `    per follower: ${perFollower.toFixed(0)} KB${perFollower <= 0 ? ' (no growth to measure: the garbage collector moves RSS by more than the followers add)' : ''}; all ${followers} fed by one tail (${lagged} behind the first by more than 200 characters)`,
    );
  } finally {
    await server.stop('SIGKILL');
  }
}

/** A server that takes connections and never answers: a notify or commit-status endpoint that hangs. */
async function hangingServer(): Promise<{ url: string; requests: () => number; close: () => void }> {
  let count = 0;
  const held: http.ServerResponse[] = [];
  const server = http.createServer((_req, res) => {
    count++;
    held.push(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => count,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

async function notifyLatency(): Promise<void> {
  // Pushes a second apart, so none supersedes the next while it is queued: each one runs.
  const plain = await jobGapsSpaced('');
  const hang = await hangingServer();
  const slowConfig = [
    'public_url: https://ci.example.com',
    'notify:',
    `  - webhook: ${hang.url}/notify`,
    '    secret: env:NOTIFY_SECRET',
    '    on: [success, failure, recovery]',
    `  - slack: ${hang.url}/slack`,
    '    on: [success, failure, recovery]',
    'report: github',
    `report_api: ${hang.url}`,
    'report_token: env:REPORT_TOKEN',
    '',
  ].join('\n');
  const slow = await jobGapsSpaced(slowConfig);
  console.log(
    `(c) ${jobCount} jobs (one per repo, concurrency 1) back to back: end of a job → start of the next (journal times, ms resolution)`,
  );
  console.log(
    `    no notify/report:                                  median ${median(plain.gaps)} ms, max ${Math.max(...plain.gaps)} ms`,
  );
  console.log(
    `    notify webhook + slack + github statuses that hang: median ${median(slow.gaps)} ms, max ${Math.max(...slow.gaps)} ms (${hang.requests()} requests held open)`,
  );
  console.log(`    job wall time, median: ${median(plain.walls)} ms without, ${median(slow.walls)} ms with`);
  hang.close();
}

/** jobCount jobs queued behind one held job, so they run back to back; gaps and wall times. */
async function jobGapsSpaced(extraConfig: string): Promise<{ gaps: number[]; walls: number[] }> {
  const dir = tmpDir('shipkit-bench-ui-');
  const repos = Object.fromEntries(Array.from({ length: jobCount }, (_, i) => [`o/quick${i}`, {}]));
  const config = writeConfig(dir, { repos, concurrency: 1 });
  writeFileSync(config, readFileSync(config, 'utf8') + extraConfig);
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env });
  try {
    // One repo per job: nothing supersedes; concurrency 1 runs them back to back.
    const ids: string[] = [];
    for (let i = 0; i < jobCount; i++) {
      const res = await deliverGithub(server.url, 'push', pushPayload(`o/quick${i}`), SECRET);
      ids.push(String(res.json.job));
    }
    for (const id of ids) await waitForJobState(server.url, TOKEN, id, ['succeeded', 'failed'], 120_000);
    const jobs = await Promise.all(ids.map((id) => fetchJob(server.url, TOKEN, id)));
    jobs.sort((a, b) => Date.parse(a.started) - Date.parse(b.started));
    const gaps: number[] = [];
    for (let i = 1; i < jobs.length; i++) gaps.push(Date.parse(jobs[i].started) - Date.parse(jobs[i - 1].finished));
    return { gaps, walls: jobs.map((j) => Date.parse(j.finished) - Date.parse(j.started)) };
  } finally {
    await server.stop('SIGKILL');
  }
}

console.log(
  `load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}, ${(await import('node:os')).cpus().length} cores`,
);
if (!args['only-memory']) await renderTimes();
await followerMemory();
if (!args['only-memory']) await notifyLatency();
