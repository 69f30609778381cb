// The report load generator of bench:fleet-pull, run as its own process so hook-server and the
// load each get a core: CONCURRENCY clients on keep-alive connections, each sending signed
// POST /fleet/reports (§5 with the body line, a fresh nonce each) one after another for SECONDS,
// from HOSTS distinct host ids. Prints one JSON line: accepted, other answers, errors, rate, p50, p99.
// With RATE > 0 the load is open instead: RATE reports a second are started on schedule whatever
// the answers do (at most CONCURRENCY connections; the rest wait for one), and each latency is
// counted from when its report was due, so a stall is not hidden by sending less during it.
// Usage: tsx bench/fleet-pull-load.ts URL APP SECRET_FILE SECONDS CONCURRENCY HOSTS [RATE]
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { signRequest } from '../lib/http/signing.ts';
import { hostCredential } from '../lib/release/format/fleet-report.ts';
import { rolloutBucket } from '../lib/release/format/bucket.ts';

const [url, app, secretFile, seconds, concurrency, hostCount, rateArg = '0'] = process.argv.slice(2);
const rate = Number(rateArg);
const secret = readFileSync(secretFile, 'utf8').trim();
const target = new URL('/fleet/reports', url);
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(concurrency) });
const hosts = Array.from({ length: Number(hostCount) }, () => randomBytes(16).toString('hex'));
const latencies: number[] = [];
const answers: Record<string, number> = {};
let errors = 0;
let seq = 1000;

function send(due = performance.now()): Promise<void> {
  const host = hosts[Math.floor(Math.random() * hosts.length)];
  const body = JSON.stringify({
    app,
    host,
    version: '2.0',
    previous: '1.0',
    seq: seq++,
    bucket: rolloutBucket(host, '2.0'),
    result: 'updated',
    reason: '',
    seconds: 1.5,
  });
  const headers = {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
    ...signRequest(hostCredential(secret, host), 'POST', target.pathname, { body }),
  };
  const t0 = due;
  return new Promise((resolve) => {
    const req = http.request(target, { method: 'POST', agent, headers }, (res) => {
      res.resume();
      res.on('end', () => {
        latencies.push(performance.now() - t0);
        answers[res.statusCode ?? 0] = (answers[res.statusCode ?? 0] ?? 0) + 1;
        resolve();
      });
    });
    req.on('error', () => {
      errors++;
      resolve();
    });
    req.end(body);
  });
}

const end = performance.now() + Number(seconds) * 1000;
const started = performance.now();
if (rate > 0) {
  // Open load: every 5 ms, the reports due since the last tick.
  const sent: Promise<void>[] = [];
  let due = 0;
  while (performance.now() < end) {
    const now = performance.now();
    const owed = Math.floor(((now - started) / 1000) * rate) - due;
    for (let i = 0; i < owed; i++, due++) sent.push(send(started + (due / rate) * 1000));
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await Promise.all(sent);
} else {
  await Promise.all(
    Array.from({ length: Number(concurrency) }, async () => {
      while (performance.now() < end) await send();
    }),
  );
}
const elapsed = (performance.now() - started) / 1000;
latencies.sort((a, b) => a - b);
const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * q))] ?? 0;
process.stdout.write(
  `${JSON.stringify({ accepted: answers[202] ?? 0, answers, errors, seconds: elapsed, rate: (answers[202] ?? 0) / elapsed, p50: at(0.5), p99: at(0.99) })}\n`,
);
agent.destroy();
