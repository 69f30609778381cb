// npm run bench:push -- --smoke (bench/push.ts) as a child process: 1 run on 2 hosts per side,
// shipkit, pm2 deploy and the rsync script each taking the commit; exit 0, its result rows, and no
// pm2 daemon, sshd, app, launchfit or hook-server of it left. It runs in a network namespace of
// its own whose only interface is loopback (unshare -n), so a bench that reached past 127.0.0.1
// would fail; its temp folder is a fresh TMPDIR, so every process it started names that folder.
// Without its peers on the PATH it refuses to start, naming the packages. Needs root (sshd).
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { installPm2 } from '../../../bench/pm2.ts';
import { describeProcesses, processesUsing } from '../../fixtures/processes.ts';
import { ROOT, runCommand, tmpDir } from '../../_helpers/common.ts';

const BENCH = [
  '--import',
  path.join(ROOT, 'node_modules/tsx/dist/loader.mjs'),
  path.join(ROOT, 'bench/push.ts'),
  '--smoke',
];
const root = process.getuid?.() === 0;

test('bench:push --smoke times the three sides on loopback only and leaves nothing running', async () => {
  if (!root) return console.log('  skipped: bench:push runs sshd, which needs root');
  const netns = await runCommand('unshare', ['-n', 'true']);
  if (netns.exitCode !== 0)
    return console.log(`  skipped: no network namespace here (unshare -n): ${netns.stderr.trim()}`);
  const pm2Bin = await installPm2(() => {}); // outside the namespace: npm may need the registry once
  // Right under /tmp: launchfit's sockets in the bench's folders must stay within 108 bytes.
  const tmp = mkdtempSync('/tmp/pks-');
  const r = await runCommand(
    'unshare',
    ['-n', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh', process.execPath, ...BENCH],
    {
      env: { TMPDIR: tmp, BENCH_PM2_PREFIX: path.resolve(pm2Bin, '../../../..'), SHIPKIT_BENCH_BUNDLE: undefined },
      timeoutMs: 600_000,
    },
  );
  const out = r.stdout + r.stderr;
  try {
    assert.is(r.exitCode, 0, out);
    for (const side of ['shipkit', 'pm2 deploy', 'rsync script'])
      assert.match(r.stdout, new RegExp(`^${side}: \\d+ ms`, 'm'), `a total for ${side}:\n${out}`);
    assert.match(r.stdout, /BENCH-RESULT \{"work":"git push → live, 2 hosts, shipkit vs pm2 deploy"/);
    assert.match(r.stdout, /BENCH-RESULT \{"work":"git push → live, 2 hosts, shipkit vs rsync script"/);
    assert.match(r.stdout, /BENCH-RESULT \{"work":"failed requests during shipkit's deploys, 2 hosts"/);
  } finally {
    const left = describeProcesses(processesUsing(tmp));
    rmSync(tmp, { recursive: true, force: true });
    assert.equal(left, '', `no process of the bench is left:\n${out}`);
  }
});

test('without its peers on the PATH bench:push refuses to start and names the packages', async () => {
  const bin = path.join(tmpDir('shipkit-push-path-'), 'bin');
  mkdirSync(bin);
  symlinkSync(process.execPath, path.join(bin, 'node'));
  const r = await runCommand(process.execPath, BENCH, { env: { PATH: bin }, timeoutMs: 60_000 });
  assert.is(r.exitCode, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /bench:push: cannot run without its peers: sshd \(apt-get install openssh-server\)/);
  assert.match(r.stderr, /rsync \(apt-get install rsync\)/);
  assert.match(r.stderr, /nothing was started/);
  assert.is(r.stdout, '');
});

test('bad flags: exit 2 with the flag named, before anything starts', async () => {
  for (const [flag, value, why] of [
    ['--healthy-after', '-1', /--healthy-after takes a whole number, 0 or more/],
    ['--healthy-after', 'soon', /--healthy-after takes a whole number, 0 or more/],
    ['--runs', '0', /--runs takes a whole number, 1 or more/],
    ['--hosts', '2.5', /--hosts takes a whole number, 1 or more/],
  ] as const) {
    const r = await runCommand(process.execPath, [...BENCH, flag, value], { timeoutMs: 60_000 });
    assert.is(r.exitCode, 2, `${flag} ${value}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, why);
    assert.is(r.stdout, '', 'nothing was started or measured');
  }
});

test.run();
