// What commit statuses and notifications add to a job (the goal: nothing on the job's
// critical path). The same hook-server (in this process, real job processes: the test suite's
// stand-in build) runs N pushes three ways: no reporting (the peer), reporting to a loopback API
// that answers at once, and to one that never answers (every status times out). Printed: the
// median and p90 of a job's run (started → finished) and of the delivery-to-end time.
// Usage: npm run bench:report [-- --jobs N]
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadShipkitConfig } from '../lib/config/shipkit-yml.ts';
import { resolveServerSecrets, startHookServer } from '../lib/server/hook-server.ts';
import { silentLogger } from '../lib/core/log.ts';
import { FAKE_BUILD, deliverGithub, pushPayload } from '../test/fixtures/hooks/deliveries.ts';

const jobs = Number(process.argv[process.argv.indexOf('--jobs') + 1]) || 30;
const SECRET = 'bench-secret';

async function api(hang: boolean) {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (!hang) {
        res.writeHead(201);
        res.end('{}');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function run(mode: 'none' | 'answering' | 'hanging') {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'shipkit-bench-report-'));
  const target = mode === 'none' ? undefined : await api(mode === 'hanging');
  const file = path.join(dir, 'shipkit.yml');
  writeFileSync(
    file,
    [
      `data: ${dir}/data`,
      `secret: ${SECRET}`,
      'public_url: https://ci.example.com',
      ...(target
        ? [
            'report: github',
            'report_token: bench-token',
            `report_api: ${target.base}`,
            'notify:',
            `  - webhook: ${target.base}/notify`,
            '    secret: n',
            '    on: [success, failure]',
          ]
        : []),
      'repos:',
      '  octo/site: {}',
      '',
    ].join('\n'),
  );
  const config = await loadShipkitConfig(file);
  const { secrets, notify, report } = await resolveServerSecrets(config, {});
  const server = await startHookServer({
    config,
    listen: { host: '127.0.0.1', port: 0 },
    secrets,
    notify,
    report,
    log: silentLogger,
    commands: { build: [FAKE_BUILD], release: [FAKE_BUILD] },
    delivery: { timeoutMs: 2_000 },
  });
  const runs: number[] = [];
  const turnarounds: number[] = [];
  for (let i = 0; i < jobs; i++) {
    const sent = performance.now();
    const res = await deliverGithub(
      server.url,
      'push',
      pushPayload('octo/site', { sha: (i + 1).toString(16).padStart(40, '0') }),
      SECRET,
    );
    const id = res.json.job as string;
    for (;;) {
      const job = server.queue.get(id);
      if (job && (job.state === 'succeeded' || job.state === 'failed')) {
        turnarounds.push(performance.now() - sent);
        runs.push(Date.parse(job.finished!) - Date.parse(job.started!));
        break;
      }
      await new Promise((r) => setTimeout(r, 2));
    }
  }
  const stopping = performance.now();
  await server.stop();
  const stopMs = performance.now() - stopping;
  target?.close();
  rmSync(dir, { recursive: true, force: true });
  return {
    mode,
    run50: quantile(runs, 0.5),
    run90: quantile(runs, 0.9),
    turn50: quantile(turnarounds, 0.5),
    turn90: quantile(turnarounds, 0.9),
    stopMs,
  };
}

console.log(`${jobs} jobs each, one at a time; ms (run = started → finished, turnaround = POST → job ended)`);
console.log('reporting                     run p50  run p90  turnaround p50  turnaround p90  stop');
for (const mode of ['none', 'answering', 'hanging'] as const) {
  const r = await run(mode);
  console.log(
    `${(mode === 'none' ? 'none (peer)' : `status+webhook, API ${mode}`).padEnd(30)}${String(r.run50).padStart(7)}  ${String(r.run90).padStart(7)}  ${r.turn50.toFixed(0).padStart(14)}  ${r.turn90.toFixed(0).padStart(14)}  ${r.stopMs.toFixed(0).padStart(5)}`,
  );
}
