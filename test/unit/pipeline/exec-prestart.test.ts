// lib/pipeline/exec.ts prestartNode: a node started ahead of its command runs the command exactly as
// a spawn at its turn would (argv, folder, environment, exit code, output), and only when it was
// started for exactly that; otherwise it is ended and the command spawned as usual.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { discardPrestarted, prestartNode, runLogged, type Prestarted } from '../../../lib/pipeline/exec.ts';
import { JobLogWriter } from '../../../lib/jobs/job-log.ts';
import { tmpDir, waitFor } from '../../_helpers/common.ts';

// What the command sees of itself, as one line of JSON; it exits with the code in its first argument.
const SCRIPT = `
const fs = await import('node:fs');
// Sockets open in the process (stdout and stderr are; the go pipe must not be any more).
const sockets = fs.readdirSync('/proc/self/fd').filter((fd) => { try { return fs.readlinkSync('/proc/self/fd/' + fd).startsWith('socket:'); } catch { return false; } }).length;
console.log(JSON.stringify({ pid: process.pid, argv: process.argv.slice(1), execArgv: process.execArgv, cwd: process.cwd(), sha: process.env.SHIPKIT_SHA ?? null, color: process.env.COLOR ?? null, gone: process.env.GONE ?? null, sockets }));
console.error('to stderr');
if (process.argv[3]) fs.writeFileSync(process.argv[3], 'ran');
process.exitCode = Number(process.argv[2]);
`;

interface Seen {
  pid: number;
  argv: string[];
  execArgv: string[];
  cwd: string;
  sha: string | null;
  color: string | null;
  gone: string | null;
  sockets: number;
}

async function runOnce(argv: string[], env: NodeJS.ProcessEnv, cwd: string, prestarted?: Prestarted) {
  const log = await JobLogWriter.start(tmpDir(), { id: 't', repo: 'octo/site', kind: 'build' });
  const result = await runLogged(argv, { cwd, env, log, deadline: Date.now() + 30_000, timeoutSec: 30, prestarted });
  log.finish({ status: 'succeeded', exit: 0 });
  const lines = readFileSync(log.file, 'utf8')
    .split('\n')
    .filter((l) => l.includes('| '))
    .map((l) => l.replace(/^.*?\| /, ''));
  const seen = JSON.parse(lines.find((l) => l.startsWith('{'))!) as Seen;
  return { result, seen, lines };
}

function setup() {
  const dir = tmpDir();
  const script = path.join(dir, 'script.mjs');
  writeFileSync(script, SCRIPT);
  const env = { ...process.env, COLOR: 'blue', GONE: 'here', SHIPKIT_SHA: 'old' };
  return { dir, script, env };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('a prestarted node runs the command as a spawn at its turn would, with the late variables of its turn', async () => {
  const { dir, script, env } = setup();
  const argv = [process.execPath, script, '3'];
  const prestarted = prestartNode(argv, { cwd: dir, env })!;
  assert.ok(prestarted, 'started');
  // Its turn: the commit is known now (SHIPKIT_SHA is handed over with the go).
  const turnEnv = { ...env, SHIPKIT_SHA: 'new' };
  const warm = await runOnce(argv, turnEnv, dir, prestarted);
  const cold = await runOnce(argv, turnEnv, dir);
  assert.is(warm.seen.pid, prestarted.child.pid, 'the node started ahead ran it');
  assert.is.not(cold.seen.pid, prestarted.child.pid);
  const { pid: _w, ...warmSeen } = warm.seen;
  const { pid: _c, ...coldSeen } = cold.seen;
  assert.equal(warmSeen, coldSeen, 'argv, execArgv, folder, environment and open fds as a plain spawn');
  assert.equal(warmSeen, {
    argv: [script, '3'],
    execArgv: [],
    cwd: dir,
    sha: 'new',
    color: 'blue',
    gone: 'here',
    sockets: 2,
  });
  assert.is(warm.result.exitCode, 3);
  assert.is(cold.result.exitCode, 3);
  assert.ok(warm.lines.includes('to stderr'));
});

test('a prestarted node is not used when anything but the late variables changed, and the command still runs', async () => {
  const { dir, script, env } = setup();
  const argv = [process.execPath, script, '0'];
  const changes: Array<[string, (e: NodeJS.ProcessEnv) => { argv: string[]; env: NodeJS.ProcessEnv; cwd: string }]> = [
    ['a variable changed', (e) => ({ argv, env: { ...e, COLOR: 'red' }, cwd: dir })],
    [
      'a variable removed',
      (e) => {
        const { GONE: _, ...rest } = e;
        return { argv, env: rest, cwd: dir };
      },
    ],
    [
      'another argument',
      (e) => ({ argv: [process.execPath, script, '0', path.join(dir, 'marker')], env: e, cwd: dir }),
    ],
    ['another folder', (e) => ({ argv, env: e, cwd: tmpDir() })],
  ];
  for (const [what, change] of changes) {
    const prestarted = prestartNode(argv, { cwd: dir, env })!;
    const turn = change(env);
    const { seen, result } = await runOnce(turn.argv, turn.env, turn.cwd, prestarted);
    assert.is.not(seen.pid, prestarted.child.pid, what);
    assert.is(result.exitCode, 0, what);
    assert.equal(
      { color: seen.color, gone: seen.gone, cwd: seen.cwd, argv: seen.argv },
      { color: turn.env.COLOR ?? null, gone: turn.env.GONE ?? null, cwd: turn.cwd, argv: turn.argv.slice(1) },
      what,
    );
    await waitFor(() => !isAlive(prestarted.child.pid!), { what: `the unused node ended (${what})` });
  }
});

test('an unused prestarted node ends without running anything, discarded or when its pipe closes', async () => {
  const { dir, script, env } = setup();
  const marker = path.join(dir, 'ran');
  const prestarted = prestartNode([process.execPath, script, '0', marker], { cwd: dir, env })!;
  discardPrestarted(prestarted);
  await waitFor(() => !isAlive(prestarted.child.pid!), { what: 'the discarded node ended' });
  const orphan = prestartNode([process.execPath, script, '0', marker], { cwd: dir, env })!;
  (orphan.child.stdio[3] as NodeJS.WritableStream).end();
  // (Polled: the node started ahead does not keep the event loop alive.)
  assert.is(
    await waitFor(() => orphan.child.exitCode ?? undefined, { what: 'the orphan ended' }),
    1,
    'its pipe closed without the go: exit 1, never a success',
  );
  assert.not.ok(existsSync(marker), 'the script never ran');
});

test('only `this node, SCRIPT` commands are started ahead', () => {
  const { dir, env } = setup();
  assert.is(prestartNode(['/usr/bin/env', 'node', 'x.mjs'], { cwd: dir, env }), undefined);
  assert.is(prestartNode([process.execPath, '--inspect', 'x.mjs'], { cwd: dir, env }), undefined);
  assert.is(prestartNode([process.execPath], { cwd: dir, env }), undefined);
});

test.run();
