// The test runner (test/run.ts) as whoever runs `npm test` sees it, on small test files of its
// own (TEST_DIR): a count on each file's line, the running files listed when nothing finished
// for TEST_PROGRESS_S, the slowest at the end; stopped by SIGTERM (to it or to npm), no process a
// test file started survives, daemons (setsid, gpg-agent) and a shell loop in its own group included.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT, tmpDir, waitFor } from '../../_helpers/common.ts';
import { describeProcesses, killProcessesUsing, processesUsing } from '../../fixtures/processes.ts';

/** A test file that starts what a real one may leave: a daemon in a session of its own, a looping shell in a group of its own, a gpg-agent. */
const HANG = (ready: string) => `import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
spawn('setsid', ['sleep', '600'], { stdio: 'ignore' });
spawn('bash', ['-c', 'while :; do sleep 1; done'], { stdio: 'ignore', detached: true });
spawnSync('gpg-connect-agent', ['--homedir', mkdtempSync(path.join(os.tmpdir(), 'gnupg-')), '/bye'], { stdio: 'ignore' });
writeFileSync(${JSON.stringify(ready)}, 'started');
setInterval(() => {}, 1000);
`;

interface Runner {
  child: ChildProcess;
  /** The runner's TMPDIR, where it makes the folder of its run. */
  tmp: string;
  output: () => string;
  exited: Promise<number | null>;
  /** In the environment of the runner and of everything it starts: what finds them in /proc. */
  mark: string;
}

/** `command` (the runner, or npm test) on the test files of `dir`; `detached`: in a process group of its own, as a terminal's foreground job. */
function startRunner(dir: string, command: string[], env: Record<string, string> = {}, detached = false): Runner {
  const mark = `shipkit-runner-test-${path.basename(dir)}`;
  const tmp = path.join(dir, 'tmp');
  mkdirSync(tmp);
  const child = spawn(command[0], command.slice(1), {
    cwd: ROOT,
    env: { ...process.env, TEST_DIR: dir, TMPDIR: tmp, SHIPKIT_RUNNER_TEST_MARK: mark, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached,
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, tmp, output: () => out, exited, mark };
}

const runFolders = (runner: Runner) => readdirSync(runner.tmp).filter((f) => f.startsWith('shipkit-run-'));

const RUNNER = [process.execPath, '--import', 'tsx', path.join(ROOT, 'test/run.ts'), '--sources'];

/**
 * Start a run of a file that hangs, send `signal` to `target(runner)` (a negative pid: a group)
 * once the file started everything, and check that nothing is left.
 */
async function stopAndCheck(command: string[], signal: NodeJS.Signals, target: (runner: Runner) => number) {
  const dir = tmpDir('shipkit-runner-');
  const ready = path.join(dir, 'ready');
  writeFileSync(path.join(dir, 'hang.test.ts'), HANG(ready));
  const runner = startRunner(dir, command, {}, target === group);
  try {
    await waitFor(() => existsSync(ready), { timeoutMs: 60_000, what: 'the test file to start its processes' });
    assert.ok(processesUsing(runner.mark).length >= 4, describeProcesses(processesUsing(runner.mark)));
    process.kill(target(runner), signal);
    assert.ok((await runner.exited) !== 0, runner.output());
    const said = new RegExp(`${signal}: stopped 1 running test file\\(s\\) and what they started \\(.*sleep`);
    assert.match(runner.output(), said, runner.output());
    const left = () => processesUsing(runner.mark);
    await waitFor(() => left().length === 0, { timeoutMs: 5_000, what: 'no process left' }).catch(() => {
      assert.unreachable(`left running after the run:\n${describeProcesses(left())}\n${runner.output()}`);
    });
    assert.equal(runFolders(runner), [], 'the run folder is removed');
  } finally {
    runner.child.kill('SIGKILL');
    await killProcessesUsing(runner.mark);
  }
}

const leader = (runner: Runner) => runner.child.pid!;
const group = (runner: Runner) => -runner.child.pid!;

test('SIGTERM to the runner ends the running test file and all it started, daemons included', async () => {
  await stopAndCheck(RUNNER, 'SIGTERM', leader);
});

test('SIGTERM to `npm test` reaches the runner, which ends everything', async () => {
  await stopAndCheck(['npm', 'test', '--', '--sources'], 'SIGTERM', leader);
});

test("Ctrl-C in a terminal (SIGINT to npm's group, which npm passes on again) ends everything", async () => {
  await stopAndCheck(['npm', 'test', '--', '--sources'], 'SIGINT', group);
});

test('Ctrl-C to `tsx test/run.ts` in a terminal (tsx passes it on, and kills what does not answer)', async () => {
  await stopAndCheck([path.join(ROOT, 'node_modules/.bin/tsx'), ...RUNNER.slice(3)], 'SIGINT', group);
});

test('a count on each file, the running files when nothing finished, the slowest at the end', async () => {
  const dir = tmpDir('shipkit-runner-');
  writeFileSync(path.join(dir, 'fast.test.ts'), '');
  // A daemon left behind when the file ends by itself is ended too, and named on the file's line.
  writeFileSync(
    path.join(dir, 'slow.test.ts'),
    `import { spawn } from 'node:child_process';
spawn('setsid', ['sleep', '600'], { stdio: 'ignore' }).unref();
setTimeout(() => {}, 3000);
`,
  );
  writeFileSync(path.join(dir, 'other-runtime.test.ts'), '// @deno\n');
  const runner = startRunner(dir, [...RUNNER, '--with-deno', '--jobs', '2'], { TEST_PROGRESS_S: '1' });
  try {
    assert.is(await runner.exited, 0, runner.output());
    const out = runner.output();
    assert.match(out, /^running 4 test files \(3 under Node, 1 under Deno \(marked \/\/ @deno\)\), 2 at a time$/m);
    assert.match(out, /^Node-only files, not run under Deno: 2 \(--list-node-only names them\)$/m);
    assert.match(out, /^=== [1-3]\/4 \S*fast\.test\.ts \(\d+\.\ds\) ok$/m);
    assert.match(out, /^--- [1-3]\/4 files done after \d+s; running:\n +\d+s {2}\S*slow\.test\.ts$/m);
    assert.match(out, /^=== 4\/4 \S*slow\.test\.ts \(\d+\.\ds\) ok; ended what it left running: sleep$/m);
    assert.match(out, /^slowest 4 test files:\n +\d+\.\ds {2}\S*slow\.test\.ts\n/m);
    assert.match(out, /^4\/4 test files passed in \d+\.\ds/m);
    assert.equal(describeProcesses(processesUsing(runner.mark)), '');
    assert.equal(runFolders(runner), [], 'the run folder is removed');
  } finally {
    runner.child.kill('SIGKILL');
    await killProcessesUsing(runner.mark);
  }
});

test('--list-node-only names the files not run under Deno, one a line', async () => {
  const dir = tmpDir('shipkit-runner-');
  for (const name of ['a', 'b']) writeFileSync(path.join(dir, `${name}.test.ts`), '');
  writeFileSync(path.join(dir, 'c.test.ts'), '// @deno\n');
  const runner = startRunner(dir, [...RUNNER, '--deno', '--list-node-only']);
  assert.is(await runner.exited, 0, runner.output());
  assert.match(runner.output(), /^Node-only files, not run under Deno: 2\n +\S*a\.test\.ts\n +\S*b\.test\.ts\n/m);
});

test.run();
