// Where the slow answers of `BENCH_ZD_TRACE=DIR npm run bench:zero-downtime` fall: each launchfit
// trace's update windows cut at launchfit's log lines into (a) the fetch and install, (b) the new
// instance's first 400 ms, (c) the rest of its probation and (d) the old one's drain and after;
// per phase the requests and the share over 1.3× that round's steady p99 (the goal's line).
//   node bench/zero-downtime-phases.mjs DIR/launchfit-*.json
import { readFileSync } from 'node:fs';

const totals = new Map();
const add = (phase, slow, isFresh) => {
  const t = totals.get(phase) ?? { requests: 0, slow: 0, fresh: 0, freshSlow: 0 };
  t.requests++;
  if (slow) t.slow++;
  if (isFresh) t.fresh++;
  if (isFresh && slow) t.freshSlow++;
  totals.set(phase, t);
};
for (const file of process.argv.slice(2)) {
  const trace = JSON.parse(readFileSync(file, 'utf8'));
  const rec = trace.data.rec; // start epoch ms, latency ms, outcome: three numbers a request
  const fresh = new Set((trace.data.fresh ?? []).map((k) => 3 * k)); // requests on a new connection
  const inside = (windows, t) => windows.some((w) => t >= w.from && t < w.to);
  const steady = []; // indexes into rec
  for (let i = 0; i < rec.length; i += 3) if (inside(trace.steady, rec[i])) steady.push(i);
  const sorted = steady.map((i) => rec[i + 1]).sort((a, b) => a - b);
  const line = 1.3 * sorted[Math.floor(sorted.length * 0.99)];
  for (const i of steady) add('steady', rec[i + 1] > line, fresh.has(i));
  // The log lines as the bench kept them: "@EPOCH_MS message".
  const events = (trace.log ?? '').split('\n').flatMap((l) => {
    const m = /^@(\d+) (.*)$/.exec(l);
    return m ? [{ at: Number(m[1]), msg: m[2] }] : [];
  });
  for (const w of trace.updates) {
    const at = (prefix) => events.find((e) => e.at >= w.from && e.msg.startsWith(prefix))?.at ?? Infinity;
    const started = at('app started');
    const healthy = at('the new app is healthy');
    for (let i = 0; i < rec.length; i += 3) {
      const t = rec[i];
      if (t < w.from || t >= w.to) continue;
      const phase =
        t < started
          ? 'a: fetch and install'
          : t < started + 400
            ? 'b: the new instance starting'
            : t < healthy
              ? 'c: the rest of its probation'
              : 'd: the drain and after';
      add(phase, rec[i + 1] > line, fresh.has(i));
    }
  }
}
for (const [phase, t] of [...totals].sort(([a], [b]) => a.localeCompare(b)))
  console.log(
    `${phase.padEnd(30)} ${String(t.requests).padStart(7)} requests ${String(t.slow).padStart(5)} slow  ${((100 * t.slow) / t.requests).toFixed(2)} %` +
      `  (on a new connection: ${t.fresh}, ${t.freshSlow} of them slow)`,
  );
