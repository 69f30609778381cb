// lib/pipeline/exec.ts: output capping, the time limit that kills a whole process tree, and commands
// started directly (no shell).
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CappedOutput, captureCommand, runLogged } from '../../../lib/pipeline/exec.ts';
import { JobLogWriter } from '../../../lib/jobs/job-log.ts';
import { tmpDir, waitFor } from '../../_helpers/common.ts';

async function writer(dir = tmpDir()) {
  return JobLogWriter.start(dir, { id: 't', repo: 'octo/site', kind: 'build' });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('CappedOutput: small output is written line by line with timestamps', async () => {
  const log = await writer();
  const out = new CappedOutput(log, { headBytes: 1000, tailBytes: 100 });
  out.write(Buffer.from('one\ntw'));
  out.write(Buffer.from('o\r\nthree'));
  out.end();
  log.finish({ status: 'succeeded', exit: 0 });
  const lines = readFileSync(log.file, 'utf8')
    .split('\n')
    .filter((l) => l.includes('| '));
  assert.equal(
    lines.map((l) => l.replace(/^\d\d:\d\d:\d\d\.\d{3} /, '')),
    ['| one', '| two', '| three'],
  );
});

test('CappedOutput: credentials in URLs never reach the log', async () => {
  const log = await writer();
  const out = new CappedOutput(log);
  out.write(Buffer.from("fatal: repository 'https://deploy:s3cr3t-t0ken@git.example.com/octo/site.git/' not found\n"));
  out.end();
  log.finish({ status: 'failed', exit: 1 });
  const text = readFileSync(log.file, 'utf8');
  assert.not.match(text, /s3cr3t/);
  assert.match(text, /https:\/\/\*\*\*@git\.example\.com\/octo\/site\.git/);
});

test("CappedOutput: the job's secrets are masked on the stream, also across chunks, a long-line cut and the head/tail cut", async () => {
  const secret = 'hunter2-correct-horse';
  const log = await JobLogWriter.start(tmpDir(), { id: 't', repo: 'octo/site', kind: 'build' }, { secrets: [secret] });
  const out = new CappedOutput(log, { headBytes: 20_000, tailBytes: 4096 });
  // The secret cut by the 16 KB line limit and by a chunk boundary, then at the end of the head.
  const text = `${'x'.repeat(16 * 1024 - 5)}${secret}\n${'y'.repeat(20_000 - 16 * 1024 - 30)}${secret}\n`;
  for (let i = 0; i < text.length; i += 7) out.write(Buffer.from(text.slice(i, i + 7)));
  out.end();
  log.finish({ status: 'succeeded', exit: 0 });
  const written = readFileSync(log.file, 'utf8');
  for (const part of [secret, secret.slice(0, 8), secret.slice(-8)])
    assert.not.ok(written.includes(part), `the log holds ${part}`);
  assert.match(written, /\*\*\*/);
});

test('CappedOutput: keeps head and tail, says how much was left out', async () => {
  const log = await writer();
  const out = new CappedOutput(log, { headBytes: 100, tailBytes: 50 });
  for (let i = 0; i < 10000; i++) out.write(Buffer.from(`line ${i}\n`));
  out.end();
  log.finish({ status: 'succeeded', exit: 0 });
  const text = readFileSync(log.file, 'utf8');
  assert.match(text, /\| line 0\n/);
  assert.match(text, /\| line 9999\n/);
  assert.not.match(text, /\| line 5000\n/);
  assert.match(text, /--- [\d.]+ KB of output left out here/);
  assert.ok(text.length < 2000, `log is ${text.length} bytes`);
});

test('CappedOutput: one endless line without newline stays bounded', async () => {
  const log = await writer();
  const out = new CappedOutput(log, { headBytes: 64 * 1024, tailBytes: 16 * 1024 });
  const chunk = Buffer.alloc(64 * 1024, 'y');
  for (let i = 0; i < 200; i++) out.write(chunk);
  out.end();
  log.finish({ status: 'succeeded', exit: 0 });
  assert.ok(statSync(log.file).size < 200 * 1024, `log is ${statSync(log.file).size} bytes`);
  assert.match(readFileSync(log.file, 'utf8'), /\[line continues\]/);
});

test('runLogged: 50 MB of output is counted, not logged', async () => {
  const log = await writer();
  const result = await runLogged(['sh', '-c', 'yes "some build output line" | head -c 52428800; echo; echo done'], {
    cwd: tmpDir(),
    env: process.env,
    log,
    deadline: Date.now() + 60_000,
    timeoutSec: 60,
  });
  log.finish({ status: 'succeeded', exit: 0 });
  assert.is(result.exitCode, 0);
  assert.ok(result.outputBytes >= 52428800);
  assert.ok(statSync(log.file).size < 3 * 1024 * 1024, `log is ${statSync(log.file).size} bytes`);
  assert.match(readFileSync(log.file, 'utf8'), /\| done\n/);
});

test('runLogged: the time limit kills the whole process group and says so', async () => {
  const dir = tmpDir();
  const log = await writer();
  const pidFile = path.join(dir, 'grandchild.pid');
  // A shell that starts a background sleeper (a grandchild) and then hangs itself.
  const script = `sleep 300 & echo $! > ${pidFile}; echo started; sleep 300`;
  const result = await runLogged(['sh', '-c', script], {
    cwd: dir,
    env: process.env,
    log,
    deadline: Date.now() + 1500,
    timeoutSec: 1.5,
    killGraceMs: 500,
  });
  log.finish({ status: 'failed', exit: 1 });
  assert.ok(result.timedOut);
  await waitFor(() => existsSync(pidFile), { what: 'pid file' });
  const grandchild = Number(readFileSync(pidFile, 'utf8'));
  await waitFor(() => !isAlive(grandchild), { what: 'the background sleeper to be killed', timeoutMs: 10_000 });
  const text = readFileSync(log.file, 'utf8');
  assert.match(text, /\| started/);
  assert.match(text, /!!! time limit reached: the job's timeout is 1.5 s; stopping process group \d+/);
});

test('runLogged: an abort signal stops the command', async () => {
  const log = await writer();
  const controller = new AbortController();
  setTimeout(() => controller.abort('the job received SIGTERM'), 300);
  const result = await runLogged(['sleep', '60'], {
    cwd: tmpDir(),
    env: process.env,
    log,
    deadline: Date.now() + 60_000,
    timeoutSec: 60,
    signal: controller.signal,
    killGraceMs: 500,
  });
  log.finish({ status: 'failed', exit: 1 });
  assert.is.not(result.exitCode, 0, 'sleep 60 was stopped, not waited out (it would exit 0)');
  assert.match(readFileSync(log.file, 'utf8'), /stopping process group \d+: the job received SIGTERM/);
});

test('runLogged: arguments reach the command as they are, no shell in between', async () => {
  const log = await writer();
  const result = await runLogged(['printf', '%s\\n', '$HOME', 'a  b', '*', "it's"], {
    cwd: tmpDir(),
    env: process.env,
    log,
    deadline: Date.now() + 60_000,
    timeoutSec: 60,
  });
  log.finish({ status: 'succeeded', exit: 0 });
  assert.is(result.exitCode, 0);
  const lines = readFileSync(log.file, 'utf8')
    .split('\n')
    .filter((l) => l.includes('| '))
    .map((l) => l.replace(/^\S+ \| /, ''));
  assert.equal(lines, ['$HOME', 'a  b', '*', "it's"]);
});

test('runLogged: a command that is not there ends 127, as in a shell, with a line saying so', async () => {
  const log = await writer();
  const result = await runLogged(['no-such-command-shipkit'], {
    cwd: tmpDir(),
    env: process.env,
    log,
    deadline: Date.now() + 60_000,
    timeoutSec: 60,
  });
  log.finish({ status: 'failed', exit: 1 });
  assert.is(result.exitCode, 127);
  assert.not.ok(result.timedOut);
  assert.match(readFileSync(log.file, 'utf8'), /\| shipkit: cannot run no-such-command-shipkit: command not found\n/);
  assert.equal(result.lastLines, ['shipkit: cannot run no-such-command-shipkit: command not found']);
});

test('captureCommand: stdout and the exit code; stderr dropped; a missing command gives null', async () => {
  const ok = await captureCommand(['sh', '-c', 'echo out; echo err >&2'], { cwd: tmpDir() });
  assert.equal(ok, { exitCode: 0, stdout: 'out\n' });
  const failed = await captureCommand(['sh', '-c', 'echo partial; exit 3'], { cwd: tmpDir() });
  assert.equal(failed, { exitCode: 3, stdout: 'partial\n' });
  assert.equal(await captureCommand(['no-such-command-shipkit'], { cwd: tmpDir() }), { exitCode: null, stdout: '' });
});

test('captureCommand: a command past its time is stopped', async () => {
  const result = await captureCommand(['sleep', '60'], { cwd: tmpDir(), timeoutMs: 200 });
  assert.is(result.exitCode, null);
});

test.run();
