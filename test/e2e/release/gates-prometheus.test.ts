// @deno
// Metric gates (lib/release/gates/metric.ts) against a real Prometheus (Debian's `prometheus`)
// scraping a real test app each second: healthy, a 3 s gate passes; answering 500s, it halts with
// rollback. Under Deno the holds run in a Deno process. Prints the gate's overhead: a for: 0s
// hold, and a for: 3s hold less its 3 s.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { signalGroup } from '../../../lib/core/process-group.ts';
import { holdGates, readGate, type GateOutcome, type MetricGate } from '../../../lib/release/gates/metric.ts';
import { freePort, ROOT, RUNTIME, runCommand, tmpDir, waitFor } from '../../_helpers/common.ts';

const PROMETHEUS = '/usr/bin/prometheus';
const DENO = path.join(ROOT, 'node_modules/.bin/deno');
const RATIO = 'sum(rate(http_requests_total{code=~"5.."}[5s])) / sum(rate(http_requests_total[5s]))';

/** The app whose /metrics Prometheus scrapes: it counts 10 requests a second, half of them 500s once failing. */
function startApp() {
  const counts = { '200': 0, '500': 0 };
  const app = { failing: false, url: '', counts };
  const tick = setInterval(() => {
    counts['200']++;
    if (app.failing) counts['500']++;
  }, 100);
  const server = http.createServer((req, res) => {
    if (req.url !== '/metrics') return void res.writeHead(404).end();
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' });
    res.end(
      '# HELP http_requests_total Requests answered, by status code.\n# TYPE http_requests_total counter\n' +
        Object.entries(counts)
          .map(([code, n]) => `http_requests_total{code="${code}"} ${n}\n`)
          .join(''),
    );
  });
  const listening = new Promise<void>((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      app.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      resolve();
    }),
  );
  const stop = () => {
    clearInterval(tick);
    server.closeAllConnections();
    server.close();
  };
  return { app, listening, stop };
}

let prometheus: { child: ChildProcess; url: string; dir: string } | undefined;
const world = startApp();

/** Prometheus on a free port of 127.0.0.1 in its own process group, scraping the app every second. */
async function startPrometheus(appUrl: string) {
  const dir = tmpDir('shipkit-prometheus-');
  const config = path.join(dir, 'prometheus.yml');
  writeFileSync(
    config,
    [
      'global:',
      '  scrape_interval: 1s',
      '  evaluation_interval: 1s',
      'scrape_configs:',
      '  - job_name: app',
      '    static_configs:',
      `      - targets: ['${new URL(appUrl).host}']`,
      '',
    ].join('\n'),
  );
  const port = await freePort();
  const log = openSync(path.join(dir, 'prometheus.log'), 'a');
  const child = spawn(
    PROMETHEUS,
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { cwd: dir, stdio: ['ignore', log, log], detached: true },
  );
  closeSync(log);
  process.on('exit', () => signalGroup(child.pid, 'SIGKILL'));
  return { child, url: `http://127.0.0.1:${port}`, dir };
}

const logOf = () => (prometheus ? readFileSync(path.join(prometheus.dir, 'prometheus.log'), 'utf8') : '');

test.before(async () => {
  await world.listening;
  if (!existsSync(PROMETHEUS)) return;
  const version = spawnSync(PROMETHEUS, ['--version'], { encoding: 'utf8' });
  console.log(`  ${`${version.stdout}${version.stderr}`.split('\n')[0]}`);
  prometheus = await startPrometheus(world.app.url);
  const { url, child } = prometheus;
  const ready = async () => {
    if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}: ${logOf()}`);
    return (await fetch(`${url}/-/ready`).catch(() => undefined))?.status === 200;
  };
  await waitFor(ready, { timeoutMs: 15_000, what: 'prometheus to be ready' });
  const scraped = async () => {
    const targets = (await (await fetch(`${url}/api/v1/targets`)).json()) as {
      data: { activeTargets: Array<{ health: string }> };
    };
    return targets.data.activeTargets[0]?.health === 'up';
  };
  await waitFor(scraped, { timeoutMs: 15_000, intervalMs: 200, what: 'prometheus to scrape the app' });
  // rate() over [5s] needs two scrapes of the app.
  const answers = async () => (await readGate(gate(0))).kind === 'ok';
  await waitFor(answers, { timeoutMs: 15_000, intervalMs: 200, what: 'the error ratio to be readable' });
});

test.after(async () => {
  world.stop();
  if (!prometheus) return;
  const { child } = prometheus;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  if (child.exitCode === null && signalGroup(child.pid, 'SIGKILL')) await exited;
});

const gate = (forSec: number, query = RATIO): MetricGate => ({
  prometheus: prometheus!.url,
  query,
  max: 0.01,
  forSec,
  text: query,
});

interface Held {
  outcome: GateOutcome;
  ms: number;
  lines: string[];
}

/** holdGates under the test's runtime (Deno: in a Deno process of its own), timed around the call alone. */
async function hold(gates: MetricGate[], deadlineInMs: number): Promise<Held> {
  if (RUNTIME === 'deno') {
    const script = `import { holdGates } from ${JSON.stringify(path.join(ROOT, 'lib/release/gates/metric.ts'))};
      const lines = [];
      const t0 = performance.now();
      const outcome = await holdGates(${JSON.stringify(gates)},
        { deadline: Date.now() + ${deadlineInMs}, pollMs: 500, print: (line) => lines.push(line) });
      console.log(JSON.stringify({ outcome, ms: performance.now() - t0, lines }));`;
    const r = await runCommand(DENO, ['eval', '--quiet', '--ext=ts', script], { timeoutMs: 60_000 });
    assert.is(r.exitCode, 0, r.stderr);
    return JSON.parse(r.stdout) as Held;
  }
  const lines: string[] = [];
  const t0 = performance.now();
  const outcome = await holdGates(gates, {
    deadline: Date.now() + deadlineInMs,
    pollMs: 500,
    print: (line) => lines.push(line),
  });
  return { outcome, ms: performance.now() - t0, lines };
}

const skipped = () => {
  if (prometheus) return false;
  console.log(`  skipped: prometheus is not installed (${PROMETHEUS}; apt-get install prometheus)`);
  return true;
};

test('a healthy app: for: 0s passes on one reading, for: 3s after 3 s, each well under 1 s beyond for:', async () => {
  if (skipped()) return;
  const instant = await hold([gate(0)], 10_000);
  assert.equal(instant.outcome, { pass: true, readings: [`gate "${RATIO}": 0 ≤ 0.01, held 0 s of 0 s`] });
  const held = await hold([gate(3)], 10_000);
  assert.equal(held.outcome, { pass: true, readings: [`gate "${RATIO}": 0 ≤ 0.01, held 3 s of 3 s`] });
  assert.equal(held.lines, [`gate "${RATIO}": 0 ≤ 0.01, held 0 s of 3 s`]);
  const beyond = held.ms - 3_000;
  console.log(
    `  gate overhead (${RUNTIME}): for: 0s hold took ${instant.ms.toFixed(1)} ms; ` +
      `for: 3s hold took ${held.ms.toFixed(0)} ms, ${beyond.toFixed(1)} ms beyond for:`,
  );
  assert.ok(instant.ms < 1_000, `for: 0s took ${instant.ms} ms`);
  assert.ok(beyond >= 0 && beyond < 1_000, `for: 3s took ${held.ms} ms`);
});

test('queries Prometheus cannot answer with one value hold until the deadline, then fail without rollback', async () => {
  if (skipped()) return;
  const held = await hold([gate(0, 'http_requests_total'), gate(0, 'sum(rate(http_requests_total[5s]')], 1_500);
  assert.is(held.outcome.pass, false);
  const { rollback, reason } = held.outcome as { rollback: boolean; reason: string };
  assert.is(rollback, false);
  const where = `Prometheus at ${prometheus!.url}`;
  assert.match(
    reason,
    `gate "http_requests_total" could not be read before the deadline: ${where} answered 2 series ` +
      `({__name__="http_requests_total",code="200",instance=`,
  );
  assert.match(
    reason,
    `gate "sum(rate(http_requests_total[5s]" could not be read before the deadline: ${where} answered 400: `,
  );
  assert.ok(held.ms >= 1_000 && held.ms < 5_000, `${held.ms} ms`);
});

test('once the app answers 500s, the held gate halts with rollback, the value and the query in the reason', async () => {
  if (skipped()) return;
  world.app.failing = true;
  const held = await hold([gate(20)], 20_000);
  assert.is(held.outcome.pass, false, held.lines.join('\n'));
  const { rollback, reason } = held.outcome as { rollback: boolean; reason: string };
  assert.is(rollback, true);
  const m = new RegExp(`^gate "(.*)" read ([0-9.e-]+), over its max 0\\.01 \\(Prometheus at (.*)\\)$`).exec(reason);
  assert.ok(m, reason);
  assert.equal([m![1], m![3]], [RATIO, prometheus!.url]);
  const value = Number(m![2]);
  assert.ok(value > 0.01 && value <= 0.5, reason);
  assert.is(held.lines.at(-1), `gate "${RATIO}": ${value} > 0.01, over its max`);
  assert.ok(held.ms < 10_000, `the 500s were seen after ${held.ms} ms`);
  console.log(`  the 500s halted the gate after ${(held.ms / 1000).toFixed(1)} s: ${reason}`);
});

test.run();
