// npm run demo -- --environments (tools/demo-environments.ts) as a child process: a promote to
// production refused until Alice approves (0 of 1, then 1 of 1), then the same tarball in both
// environments, `release history` with each version's path, launchfit serving it from production;
// exit 0, its temp folder gone, no launchfit or app of it left. `--help` lists the flag.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { describeProcesses, processesUsing } from '../../fixtures/processes.ts';
import { ROOT, runCommand } from '../../_helpers/common.ts';

const demo = (args: string[]) =>
  runCommand(
    process.execPath,
    ['--import', path.join(ROOT, 'node_modules/tsx/dist/loader.mjs'), path.join(ROOT, 'tools/demo.ts'), ...args],
    { timeoutMs: 180_000 },
  );

test('the environments demo: refused, approved, promoted byte for byte, served; exit 0, nothing left', async () => {
  const r = await demo(['--environments']);
  const out = r.stdout;
  assert.is(r.exitCode, 0, out + r.stderr);
  const lines = out.split('\n');
  const at = (pattern: RegExp) => lines.findIndex((l) => pattern.test(l));
  const steps = [
    /^\$ shipkit release publish app --name demo-app .* --to staging$/,
    /^\$ shipkit release promote demo-app 1\.0\.0 --from staging --to production --config shipkit\.yml$/,
    /^ {2}→ exit 2 \(refused\)/,
    /^ {4}error: demo-app 1\.0\.0 into production needs 1 approval; 0 given \(waiting for Alice <alice@example\.com>\)/,
    /^ {4}demo-app 1\.0\.0 → production: 0 of 1 approvals \(waiting for Alice <alice@example\.com>\)$/,
    /^ {4}Approved demo-app 1\.0\.0 \(sha256 [0-9a-f]{64}\) for production until \S+: 1 of 1 approvals$/,
    /^ {4}Promoted demo-app 1\.0\.0 .* from staging to production: VERSION SEQ 1(, the tarball hard-linked)?$/,
    /^ {6}1\.0\.0: staging: published .*, current → production: promoted from staging .*, current$/,
    /^ {2}GET http:\/\/127\.0\.0\.1:\d+\/ → demo-app 1\.0\.0, pid \d+$/,
    /^demo done in [\d.]+ s; everything it started is stopped$/,
  ].map(at);
  assert.ok(
    steps.every((i) => i >= 0),
    `every step printed:\n${out}`,
  );
  assert.equal(
    [...steps].sort((a, b) => a - b),
    steps,
    `the steps come in order:\n${out}`,
  );
  const sums = ['staging', 'production'].map(
    (env) =>
      new RegExp(`^ {2}${env}/demo-app-gnu-linux-1\\.0\\.0\\.tar\\.gz +sha256 ([0-9a-f]{64})$`, 'm').exec(out)?.[1],
  );
  assert.ok(sums[0], out);
  assert.is(sums[1], sums[0], 'the same tarball in staging and production');
  const dir = /everything in (\S+)/.exec(out)![1];
  assert.match(out, new RegExp(`^ {6}production +1\\.0\\.0 \\(current\\) +${dir}/production$`, 'm'));
  assert.not.ok(existsSync(dir), 'the temp folder is gone');
  assert.equal(describeProcesses(processesUsing(dir)), '', 'no launchfit or app of the demo is left');
});

test('npm run demo -- --help lists --environments', async () => {
  const r = await demo(['--help']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(
    r.stdout,
    /npm run demo -- --environments +\(staging → approval → production, tools\/demo-environments\.ts\)/,
  );
});

test.run();
