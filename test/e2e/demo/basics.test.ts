// npm run demo: the real demo (tools/demo.ts) as a child process with 3 launchfit hosts: its
// timeline, the broken release stopped at the canary, exit 0, and nothing left behind; Ctrl-C
// (SIGINT) in the middle stops everything it started too.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { describeProcesses, processesUsing } from '../../fixtures/processes.ts';
import { ROOT, runCommand, waitFor } from '../../_helpers/common.ts';

const DEMO = [path.join(ROOT, 'tools/demo.ts')];
const TSX = ['--import', path.join(ROOT, 'node_modules/tsx/dist/loader.mjs')];

const ms = (line: string | undefined) => Number(/\+\s*(\d+) ms/.exec(line ?? '')?.[1]);

test('the demo pushes a release to every host, stops a broken one at the canary, and exits 0 with nothing left running', async () => {
  const r = await runCommand(process.execPath, [...TSX, ...DEMO, '--hosts', '3'], { timeoutMs: 150_000 });
  const out = r.stdout;
  assert.is(r.exitCode, 0, out + r.stderr);
  const [good, bad] = out.split('\n2. git push');
  const events = [
    'push accepted',
    'build done',
    'published my-app-gnu-linux-1.0.0.',
    'canary live: host1 answers 2',
    'every host live: 3/3 answer 2',
  ];
  const times = events.map((e) => ms(good.split('\n').find((l) => l.includes(e))));
  assert.ok(
    times.every((t) => t > 0),
    `every event of the first push with its ms since the push:\n${out}`,
  );
  assert.equal(
    [...times].sort((a, b) => a - b),
    times,
    'the events come in order',
  );
  assert.match(
    bad,
    /canary rolled back: the new release my-app-gnu-linux-1\.0\.0\.[0-9a-f]+ did not answer its health check .* with a 2xx within 3 s/,
  );
  assert.match(
    bad,
    /rollout halted: job failed: The rollout halted at canary: 1 host\(s\) failed .* 2 host\(s\) of later waves were not told to update \(some only to prepare\)/,
  );
  const release =
    /every host still serves version 2 \((1\.0\.0\.[0-9a-f]+)\); 2 host\(s\) never asked about version 3/.exec(
      out,
    )?.[1];
  assert.ok(release, out);
  assert.match(out, new RegExp(`host1 +${release} +2 +yes \\(canary\\): rolled back`));
  for (const h of ['host2', 'host3']) assert.match(out, new RegExp(`${h} +${release} +2 +no\n`));
  const dir = /everything in (\S+)/.exec(out)![1];
  assert.not.ok(existsSync(dir), 'the temp folder is gone');
  assert.equal(describeProcesses(processesUsing(dir)), '', 'no process of the demo is left');
});

test('Ctrl-C in the middle of the demo stops everything it started', async () => {
  const child = spawn(process.execPath, [...TSX, ...DEMO, '--hosts', '2'], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    await waitFor(() => out.includes('1. git push') || child.exitCode !== null, {
      timeoutMs: 90_000,
      what: `the demo to start pushing:\n${out}`,
    });
    const dir = /everything in (\S+)/.exec(out)![1];
    assert.ok(processesUsing(dir).length > 2, 'launchfit hosts and hook-server run');
    child.kill('SIGINT');
    assert.is(await exited, 130, out);
    assert.match(out, /SIGINT: stopping everything the demo started/);
    assert.not.ok(existsSync(dir), 'the temp folder is gone');
    assert.equal(describeProcesses(processesUsing(dir)), '', `no process of the demo is left:\n${out}`);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});

test.run();
