// @deno
// Metric gates (lib/release/gates/metric.ts) against a real Prometheus (Debian's `prometheus`)
// scraping a real test app each second: healthy, a 3 s gate passes; answering 500s, it halts with
// rollback. Under Deno the holds run in a Deno process. Prints the gate's overhead: a for: 0s
// hold, and a for: 3s hold less its 3 s.
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { holdGates, readGate, type GateOutcome, type MetricGate } from '../../../lib/release/gates/metric.ts';
import { ROOT, RUNTIME, runCommand, waitFor } from '../../_helpers/common.ts';
import {
  ERROR_RATIO as RATIO,
  hasPrometheus,
  PROMETHEUS,
  startCountingApp,
  startPrometheus,
  type CountingApp,
  type RunningPrometheus,
} from '../../fixtures/prometheus.ts';

const DENO = path.join(ROOT, 'node_modules/.bin/deno');

let app: CountingApp;
let prometheus: RunningPrometheus | undefined;

test.before(async () => {
  app = await startCountingApp();
  if (!hasPrometheus()) return;
  prometheus = await startPrometheus(app.url);
  console.log(`  ${prometheus.version}`);
  // rate() over [5s] needs two scrapes of the app.
  const answers = async () => (await readGate(gate(0))).kind === 'ok';
  await waitFor(answers, { timeoutMs: 15_000, intervalMs: 200, what: 'the error ratio to be readable' });
});

test.after(async () => {
  app.stop();
  await prometheus?.stop();
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
  app.failing = true;
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
