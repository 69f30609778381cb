// The instance wrapper (lib/launchfit/app/instance.ts) run by the real perl: it names the app's pid,
// passes the app's exit status and signals on, ends what the app left behind (also a process in
// its own session that ignores SIGTERM), and writes the output to the log file once nobody reads
// its stdout. descendantsOf against a real process tree.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  AdoptedInstance,
  APP_PID_LINE,
  descendantsOf,
  findPerl,
  instanceCommand,
  isSameProcess,
  readLeftInstance,
} from '../../../../lib/launchfit/app/instance.ts';
import { MARK_VARIABLE, processMarkOf } from '../../../../lib/launchfit/deploy-folder/app-env.ts';
import { bootId, processStartTime } from '../../../../lib/core/process-group.ts';
import { tmpDir, waitFor } from '../../../_helpers/common.ts';

const alive = (pid: number) => {
  try {
    return !/^[ZX]/.test(readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1]);
  } catch {
    return false;
  }
};

function run(script: string, { graceMs = 500, log = path.join(tmpDir('shipkit-inst-'), 'app.log') } = {}) {
  const [file, ...args] = instanceCommand(['/bin/sh', '-c', script], { graceMs, log });
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, exited, out: () => out, err: () => err, log };
}

test('without perl the command runs as it is', () => {
  assert.equal(instanceCommand(['/bin/sh', '-c', 'x'], { graceMs: 1, log: 'l', perl: null }), ['/bin/sh', '-c', 'x']);
  assert.ok(findPerl(), 'perl is on PATH (perl-base is Essential on Debian)');
});

test("the app's pid is named, its output relayed, its exit code passed on", async () => {
  const r = run('echo hello $$; echo oops >&2; exit 7');
  assert.equal(await r.exited, { code: 7, signal: null });
  const pid = Number(APP_PID_LINE.exec(r.err())![1]);
  assert.match(r.out(), `hello ${pid}\n`);
  assert.match(r.out(), 'oops\n', 'stderr comes out on stdout');
  assert.not.match(r.err(), /subreaper/, r.err());
});

test("a signal to the wrapper reaches the app; the app's death by signal is the wrapper's", async () => {
  const r = run('sleep 30');
  await waitFor(() => APP_PID_LINE.test(r.err()));
  r.child.kill('SIGTERM');
  assert.equal(await r.exited, { code: null, signal: 'SIGTERM' });
});

test('a signal the moment the app is named is not lost: 40 wrappers, each app dies of the SIGTERM', async () => {
  // Before the fork held signals back, a third of these ended by the grace time's SIGKILL: the
  // signal came before the app's group existed, or while the child still had our handler.
  const once = async () => {
    const r = run('sleep 30');
    await waitFor(() => APP_PID_LINE.test(r.err()), { intervalMs: 1 });
    r.child.kill('SIGTERM');
    return (await r.exited).signal;
  };
  const ends: Array<string | null> = [];
  for (let round = 0; round < 10; round++) ends.push(...(await Promise.all([once(), once(), once(), once()])));
  assert.equal(
    ends.filter((s) => s !== 'SIGTERM'),
    [],
  );
});

test('what the app left behind is ended: a double-forked, setsid, SIGTERM-ignoring worker too', async () => {
  const dir = tmpDir('shipkit-inst-');
  const pidFile = path.join(dir, 'worker.pid');
  writeFileSync(path.join(dir, 'worker.sh'), `trap '' TERM; echo $$ > ${pidFile}; while :; do sleep 0.1; done\n`);
  const r = run(
    `(setsid sh ${dir}/worker.sh &); sleep 30 & echo started; while [ ! -s ${pidFile} ]; do sleep 0.05; done; exit 3`,
    { graceMs: 300 },
  );
  const worker = Number(
    await waitFor(() => {
      try {
        return readFileSync(pidFile, 'utf8').trim();
      } catch {
        return '';
      }
    }),
  );
  assert.ok(worker > 0);
  assert.ok(
    descendantsOf(r.child.pid!).includes(worker),
    'the orphaned worker was re-parented below the wrapper (subreaper)',
  );
  assert.equal(await r.exited, { code: 3, signal: null });
  assert.not.ok(alive(worker), 'the worker was killed');
});

test("once nobody reads the wrapper's stdout, the output goes to the log file", async () => {
  const dir = tmpDir('shipkit-inst-');
  const log = path.join(dir, 'app.log');
  const r = run(`echo first; sleep 0.5; echo second; echo third >&2`, { log });
  await waitFor(() => r.out().includes('first'));
  r.child.stdout!.destroy();
  assert.equal(await r.exited, { code: 0, signal: null });
  assert.is(readFileSync(log, 'utf8'), 'second\nthird\n');
});

test('descendantsOf: children and grandchildren, nothing else', async () => {
  const child = spawn('/bin/sh', ['-c', 'sleep 30 & sh -c "sleep 30 & wait" & wait'], { stdio: 'ignore' });
  const tree = await waitFor(
    () => {
      const d = descendantsOf(child.pid!);
      return d.length === 3 ? d : undefined;
    },
    { what: 'three descendants' },
  );
  assert.not.ok(tree!.includes(child.pid!));
  assert.not.ok(tree!.includes(process.pid));
  assert.equal(descendantsOf(999_999_999), []);
  for (const p of tree!) process.kill(p, 'SIGKILL');
  child.kill('SIGKILL');
});

test("readLeftInstance: a live wrapper with the deploy folder's mark and its recorded start; not a reused pid, not another folder", async () => {
  const deploy = tmpDir('shipkit-inst-');
  const release = path.join(deploy, 'releases', 'my-app-gnu-linux-1.0');
  mkdirSync(release, { recursive: true });
  const [file, ...args] = instanceCommand(['/bin/sh', '-c', 'sleep 30'], {
    graceMs: 200,
    log: path.join(deploy, 'app.log'),
  });
  const child = spawn(file, args, {
    cwd: release,
    env: { ...process.env, [MARK_VARIABLE]: processMarkOf(deploy) },
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
  });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  try {
    await waitFor(() => APP_PID_LINE.test(err));
    const pid = Number(APP_PID_LINE.exec(err)![1]);
    const start = processStartTime(child.pid!)!;
    assert.ok(isSameProcess(child.pid!, start));
    assert.not.ok(isSameProcess(child.pid!, `${start}1`));
    const pidFile = path.join(deploy, 'app.pid');
    const record = { pid, pgid: child.pid, start, boot: bootId(), startedAt: new Date().toISOString() };
    writeFileSync(pidFile, JSON.stringify(record));
    const found = await readLeftInstance(pidFile, deploy);
    assert.equal(found, { pgid: child.pid, pid, start, startedAt: record.startedAt, release: 'my-app-gnu-linux-1.0' });
    assert.is(await readLeftInstance(pidFile, tmpDir('shipkit-inst-')), undefined, "another deploy folder's mark");
    writeFileSync(pidFile, JSON.stringify({ ...record, start: `${start}1` }));
    assert.is(await readLeftInstance(pidFile, deploy), undefined, 'another start time: a reused pid');
    writeFileSync(pidFile, JSON.stringify({ ...record, boot: 'another-boot' }));
    assert.is(await readLeftInstance(pidFile, deploy), undefined, 'another boot');
    // Watched by polling: its exit is seen once it is gone.
    const adopted = new AdoptedInstance(found!, 20);
    const exited = new Promise((resolve) => adopted.on('exit', resolve));
    process.kill(-pid, 'SIGKILL');
    await exited;
    assert.not.ok(isSameProcess(child.pid!, start));
  } finally {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});

test.run();
