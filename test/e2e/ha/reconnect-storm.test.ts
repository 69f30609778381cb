// A reconnect storm (issue 58): three hook-servers behind Debian's haproxy on one PostgreSQL, a
// fleet of HOSTS enrolled hosts; every node restarted, then every host reports in the same second
// (one connection each, signed with its own credential). Each answer is 202, or 503 with a
// Retry-After the host waits before it sends again; no node crashes, each node's memory stays
// bounded, and every report ends counted. The 100,000-host size is bench:scale's (docs/benchmarks/scale-hosts.md).
import http from 'node:http';
import { appendFileSync, readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { hostCredential } from '../../../lib/release/format/fleet-report.ts';
import { signRequest } from '../../../lib/http/signing.ts';
import { hostId, report } from '../../fixtures/fleet-requests.ts';
import { startHaproxy } from '../../fixtures/haproxy.ts';
import { startPostgres } from '../../fixtures/postgres.ts';
import { freePort, startScript, waitFor, type Server } from '../../_helpers/common.ts';
import { queueConfig, worldEnv } from '../../fixtures/workers.ts';

const HOSTS = 3_000;
const FLEET = 'storm-fleet-secret-0123456789abcdef';

interface Answer {
  status: number;
  retryAfter?: string;
  said: string;
}

/** One host's report through `url`, on a connection of its own. */
function post(url: string, host: string, seq: number): Promise<Answer> {
  const body = JSON.stringify(report(host, { seq, version: seq === 1 ? '1.0' : '1.1' }));
  const headers = signRequest(hostCredential(FLEET, host), 'POST', '/fleet/reports', { body });
  return new Promise((resolve) => {
    const req = http.request(`${url}/fleet/reports`, {
      method: 'POST',
      agent: false,
      timeout: 30_000,
      headers: { 'content-type': 'application/json', ...headers },
    });
    req.on('response', (res) => {
      let said = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (said += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, retryAfter: res.headers['retry-after'], said }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (error) => resolve({ status: 0, said: String(error) }));
    req.end(body);
  });
}

const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

test('reconnect storm: every node restarted, every host reports in the same second: 202 or 503 + Retry-After, none lost', async () => {
  const pg = await startPostgres();
  if (!pg) return;
  const env = worldEnv(pg, { FLEET_WEB: FLEET });
  const nodes = await Promise.all(
    ['s1', 's2', 's3'].map(async (name) => {
      const { config } = queueConfig(name, { 'octo/site': {} }, { concurrency: 0 });
      appendFileSync(config, `fleet:\n  web:\n    secret: env:FLEET_WEB\n    max_hosts: ${HOSTS + 100}\n`);
      return { name, port: await freePort(), config };
    }),
  );
  const start = (n: (typeof nodes)[number]) =>
    startScript('hook-server', ['--config', n.config, '--listen', `127.0.0.1:${n.port}`, '--name', n.name], { env });
  let running: Server[] = await Promise.all(nodes.map(start));
  const haproxy = await startHaproxy(nodes);
  if (!haproxy) return void (await Promise.all(running.map((s) => s.stop())));
  try {
    const hosts = Array.from({ length: HOSTS }, hostId);
    // The fleet enrols, 100 at a time.
    for (let i = 0; i < HOSTS; i += 100) {
      const answers = await Promise.all(hosts.slice(i, i + 100).map((h) => post(haproxy.url, h, 1)));
      assert.ok(
        answers.every((a) => a.status === 202),
        JSON.stringify(answers.find((a) => a.status !== 202)),
      );
    }

    // Every node restarted; the storm as soon as haproxy has a node again.
    for (const code of await Promise.all(running.map((s) => s.stop()))) assert.is(code, 0);
    running = await Promise.all(nodes.map(start));
    await waitFor(async () => (await fetch(`${haproxy.url}/healthz`).catch(() => undefined))?.status === 200, {
      timeoutMs: 10_000,
      what: 'haproxy to have a node again',
    });
    const t0 = performance.now();
    const first = await Promise.all(hosts.map((h) => post(haproxy.url, h, 2)));
    const stormMs = performance.now() - t0;
    const peakRss = running.map((s) => rssMb(s.child.pid!));
    const tally = new Map<string, number>();
    for (const a of first) {
      const key = `${a.status}${a.retryAfter === undefined ? '' : ` Retry-After ${a.retryAfter}`}`;
      tally.set(key, (tally.get(key) ?? 0) + 1);
    }
    console.log(
      `  ${HOSTS} reports in one burst after a restart of 3 nodes: answered in ${stormMs.toFixed(0)} ms; ` +
        `${[...tally].map(([k, n]) => `${n} × ${k}`).join(', ')}; RSS per node after ${peakRss.map((m) => m.toFixed(0)).join(' / ')} MB`,
    );
    const wrong = first.filter((a) => a.status !== 202 && !(a.status === 503 && Number(a.retryAfter) > 0));
    assert.equal(wrong.slice(0, 3), [], `${wrong.length} answers neither 202 nor 503 with Retry-After`);

    // The refused ones send again after their Retry-After, as a host does.
    let pending = hosts.filter((_, i) => first[i].status !== 202);
    const waits = first.filter((a) => a.status === 503).map((a) => Number(a.retryAfter));
    if (waits.length) console.log(`  Retry-After from ${Math.min(...waits)} to ${Math.max(...waits)} s`);
    for (let round = 0; pending.length && round < 5; round++) {
      await new Promise((resolve) => setTimeout(resolve, Math.max(...waits) * 1000));
      const again = await Promise.all(pending.map((h) => post(haproxy.url, h, 2)));
      pending = pending.filter((_, i) => again[i].status !== 202);
    }
    assert.is(pending.length, 0, 'every host reported in the end');

    for (const s of running) assert.is(s.child.exitCode, null, `a node crashed: ${s.output().slice(-2000)}`);
    for (const [i, mb] of peakRss.entries()) assert.ok(mb <= 300, `node ${i + 1} holds ${mb.toFixed(0)} MB`);
    // Every node counts every host on 1.1 once it has read the others' writes (each looks every second).
    const route = '/fleet/web?step=100&version=1.1';
    for (const n of nodes)
      await waitFor(
        async () => {
          const res = await fetch(`http://127.0.0.1:${n.port}${route}`, { headers: signRequest(FLEET, 'GET', route) });
          const counted = await res.json();
          return counted.total === HOSTS && counted.counts.updated === HOSTS;
        },
        { timeoutMs: 15_000, what: `${n.name} to count ${HOSTS} hosts on 1.1` },
      );
  } finally {
    await haproxy.stop();
    await Promise.all(running.map((s) => s.stop()));
  }
});

test.run();
