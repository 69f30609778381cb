// The exclusive lock file (lib/core/lock.ts): held → WorkError naming the holder; waitMs; stale locks
// of dead processes taken over; real processes racing for it never overlap.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WorkError } from '../../../lib/core/errors.ts';
import { acquireLock } from '../../../lib/core/lock.ts';
import { processStartedAt } from '../../../lib/core/process-group.ts';
import { ROOT, tmpDir } from '../../_helpers/common.ts';

const TSX_LOADER = path.join(ROOT, 'node_modules/tsx/dist/loader.mjs');
const LOCK_MODULE = path.join(ROOT, 'lib/core/lock.ts');
const dir = tmpDir('shipkit-lock-');
let n = 0;
const lockFile = () => path.join(dir, `lock-${++n}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function rejectsWork(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  try {
    await promise;
  } catch (error) {
    assert.instance(error, WorkError, `got ${(error as Error).name}: ${(error as Error).message}`);
    assert.match((error as Error).message, pattern);
    return;
  }
  assert.unreachable(`expected a WorkError matching ${pattern}`);
}

/** A pid that belonged to a process which has exited (and, on a quiet machine, is not reused yet). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  const pid = child.pid!;
  await new Promise((r) => child.on('exit', r));
  return pid;
}

/** A child process running ESM code with tsx, so it can import lib/*.ts. */
function child(code: string, args: string[] = []) {
  const proc = spawn(process.execPath, ['--import', TSX_LOADER, '--input-type=module', '-e', code, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => proc.on('close', (code) => resolve(code)));
  return { proc, output: () => out, exited };
}

test('acquire records pid/host/time; a second acquire fails naming the holder; release frees it', async () => {
  const file = lockFile();
  const lock = await acquireLock(file);
  const holder = JSON.parse(readFileSync(file, 'utf8'));
  assert.is(holder.pid, process.pid);
  assert.is(holder.host, os.hostname());
  assert.ok(Math.abs(holder.time - Date.now()) < 60_000);
  await rejectsWork(
    acquireLock(file, { what: 'repo octo/site' }),
    new RegExp(
      `^repo octo/site is locked by process ${process.pid} on ${os.hostname()} since \\d{4}-\\d\\d-\\d\\dT.*; try again when it has finished\\.$`,
    ),
  );
  await rejectsWork(acquireLock(file), new RegExp(`^${file} is locked by process ${process.pid}`));
  await lock.release();
  assert.equal(
    readdirSync(dir).filter((f) => f.includes(path.basename(file))),
    [],
    'no lock and no temp files left',
  );
  const again = await acquireLock(file);
  await again.release();
  await again.release(); // releasing twice is harmless
});

test('a lock held by another live process: its pid is named; when it is killed the lock is taken over', async () => {
  const file = lockFile();
  const holder = child(`import { acquireLock } from ${JSON.stringify(LOCK_MODULE)};
    await acquireLock(${JSON.stringify(file)}); console.log('locked'); setInterval(() => {}, 1000);`);
  try {
    for (let i = 0; i < 200 && !holder.output().includes('locked'); i++) await sleep(50);
    assert.ok(holder.output().includes('locked'), holder.output());
    await rejectsWork(acquireLock(file), new RegExp(`locked by process ${holder.proc.pid} `));
  } finally {
    holder.proc.kill('SIGKILL');
  }
  await holder.exited;
  const lock = await acquireLock(file); // the holder died without releasing
  assert.is(JSON.parse(readFileSync(file, 'utf8')).pid, process.pid);
  await lock.release();
});

test('a lock left with our own pid by a past process is taken over (PID 1 restarted in a container, S07)', async () => {
  const file = lockFile();
  const pastLife = { pid: process.pid, host: os.hostname(), time: Date.now() - 5000 };
  writeFileSync(file, JSON.stringify(pastLife));
  const lock = await acquireLock(file, { what: 'data folder' });
  const holder = JSON.parse(readFileSync(file, 'utf8'));
  assert.is(holder.pid, process.pid);
  assert.is.not(holder.time, pastLife.time, 'the lock was rewritten, not shared');
  // While this process holds it, the same pid is a live holder.
  await rejectsWork(acquireLock(file, { what: 'data folder' }), /^data folder is locked by process/);
  await lock.release();
});

test('a lock whose pid now names a process started after it was written is taken over (pid reuse)', async () => {
  const file = lockFile();
  const other = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    await sleep(50);
    const started = processStartedAt(other.pid!);
    assert.ok(started !== undefined && Math.abs(started - Date.now()) < 10_000, `start time ${started}`);
    writeFileSync(file, JSON.stringify({ pid: other.pid, host: os.hostname(), time: Date.now() - 60_000 }));
    const lock = await acquireLock(file);
    assert.is(JSON.parse(readFileSync(file, 'utf8')).pid, process.pid);
    await lock.release();
    // The same live process, written as holder after it started: still held.
    writeFileSync(file, JSON.stringify({ pid: other.pid, host: os.hostname(), time: Date.now() }));
    await rejectsWork(acquireLock(file), new RegExp(`locked by process ${other.pid} `));
  } finally {
    other.kill('SIGKILL');
  }
});

test('waitMs: waits for the holder to release', async () => {
  const file = lockFile();
  const first = await acquireLock(file);
  const started = Date.now();
  setTimeout(() => void first.release(), 300);
  const second = await acquireLock(file, { waitMs: 15_000 });
  assert.ok(Date.now() - started >= 250, `waited ${Date.now() - started} ms`);
  assert.is(JSON.parse(readFileSync(file, 'utf8')).pid, process.pid);
  await second.release();
});

test('waitMs: gives up after roughly waitMs when the holder keeps it', async () => {
  const file = lockFile();
  const first = await acquireLock(file);
  const started = Date.now();
  await rejectsWork(acquireLock(file, { waitMs: 400 }), /is locked by process/);
  const waited = Date.now() - started;
  assert.ok(waited >= 350 && waited < 10_000, `waited ${waited} ms`);
  await first.release();
});

/** A time over a minute ago but after pid 1 (always alive) started, so pid 1 may be its holder. */
const oldButAfterInit = () => Math.max((processStartedAt(1) ?? 0) + 1000, Date.now() - 3_600_000);

// [label, lock file content, options, taken over?]
const staleCases: Array<[string, () => Promise<string>, { staleMs?: number }, boolean]> = [
  [
    'dead pid on this host',
    async () => JSON.stringify({ pid: await deadPid(), host: os.hostname(), time: Date.now() }),
    {},
    true,
  ],
  ['garbage content', async () => 'not json at all', {}, true],
  ['empty file', async () => '', {}, true],
  ['JSON without a pid', async () => '{"host":"x"}', {}, true],
  [
    'live pid, old, staleMs 60 s',
    async () => JSON.stringify({ pid: 1, host: os.hostname(), time: oldButAfterInit() }),
    { staleMs: 60_000 },
    true,
  ],
  [
    'live pid, old, no staleMs',
    async () => JSON.stringify({ pid: 1, host: os.hostname(), time: oldButAfterInit() }),
    {},
    false,
  ],
  // A pid on another host cannot be checked from here: it is not taken over.
  [
    'dead pid on another host',
    async () => JSON.stringify({ pid: await deadPid(), host: 'some-other-host.example', time: Date.now() }),
    {},
    false,
  ],
];

for (const [label, content, options, takenOver] of staleCases) {
  test(`stale lock: ${label} → ${takenOver ? 'taken over' : 'refused'}`, async () => {
    const file = lockFile();
    writeFileSync(file, await content());
    if (!takenOver) {
      await rejectsWork(acquireLock(file, options), /is locked by process \d+ on /);
      return;
    }
    const lock = await acquireLock(file, options);
    assert.is(JSON.parse(readFileSync(file, 'utf8')).pid, process.pid);
    await lock.release();
  });
}

test('a lock released and re-taken while a waiter looks at it is not deleted (deterministic interleaving)', async () => {
  // Patch fs/promises.readFile (lib/core/lock.ts sees it through the builtin's live ESM bindings) to
  // force: our link fails → holder A releases → we read (gone) → C links → we would rm C's lock.
  const fsp = createRequire(import.meta.url)('node:fs/promises') as typeof import('node:fs/promises');
  const original = fsp.readFile;
  const file = lockFile();
  const a = await acquireLock(file);
  let reads = 0;
  let c: Awaited<ReturnType<typeof acquireLock>> | undefined;
  (fsp as { readFile: unknown }).readFile = async (...args: Parameters<typeof original>) => {
    if (args[0] !== file) return original(...args);
    reads++;
    if (reads === 1) await a.release();
    const result = original(...args);
    if (reads === 2) {
      await result.catch(() => {});
      c = await acquireLock(file);
    }
    return result;
  };
  syncBuiltinESMExports();
  let b: Awaited<ReturnType<typeof acquireLock>> | undefined;
  try {
    b = await acquireLock(file, { waitMs: 5_000 });
  } finally {
    (fsp as { readFile: unknown }).readFile = original;
    syncBuiltinESMExports();
  }
  assert.ok(reads >= 1, 'the patch took effect');
  assert.ok(!(b && c), 'two holders at once: the waiter deleted a lock it never saw');
  await b?.release();
  await c?.release();
});

test("two waiters taking over one stale lock: the slower never deletes the faster one's lock", async () => {
  // Waiter B has judged the dead holder's lock stale and re-read it; waiter A starts right then
  // (patched readFile, as above). Whoever wins, the two must never hold the lock at once: B must
  // not rm a lock that A took in the meantime.
  const fsp = createRequire(import.meta.url)('node:fs/promises') as typeof import('node:fs/promises');
  const original = fsp.readFile;
  const file = lockFile();
  writeFileSync(file, JSON.stringify({ pid: await deadPid(), host: os.hostname(), time: Date.now() }));
  let holding = 0;
  let most = 0;
  const holdAWhile = async () => {
    const lock = await acquireLock(file, { waitMs: 15_000 });
    holding++;
    most = Math.max(most, holding);
    await sleep(400);
    holding--;
    await lock.release();
  };
  let reads = 0;
  let a: Promise<void> | undefined;
  (fsp as { readFile: unknown }).readFile = async (...args: Parameters<typeof original>) => {
    const result = await original(...args);
    if (args[0] === file && ++reads === 2) {
      a = holdAWhile();
      await sleep(150);
    }
    return result;
  };
  syncBuiltinESMExports();
  try {
    await holdAWhile();
    assert.ok(a, 'the patch took effect');
    await a;
  } finally {
    (fsp as { readFile: unknown }).readFile = original;
    syncBuiltinESMExports();
  }
  assert.is(most, 1, 'A and B held the lock at the same time');
  assert.equal(
    readdirSync(dir).filter((f) => f.includes(path.basename(file))),
    [],
    'no lock, guard or temp files left',
  );
});

test('many waiters in one process: never two holders at once', async () => {
  for (let round = 0; round < 2; round++) {
    const file = lockFile();
    let holding = 0;
    let most = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let i = 0; i < 2; i++) {
          const lock = await acquireLock(file, { waitMs: 30_000 });
          holding++;
          most = Math.max(most, holding);
          await sleep(Math.random() * 3);
          holding--;
          await lock.release();
        }
      }),
    );
    assert.is(most, 1, `round ${round}: ${most} holders at once`);
  }
});

for (const startStale of [false, true])
  test(`processes racing for the lock never overlap${startStale ? ' (starting from a stale lock)' : ''}`, async () => {
    const file = lockFile();
    if (startStale)
      writeFileSync(file, JSON.stringify({ pid: await deadPid(), host: os.hostname(), time: Date.now() }));
    const journal = path.join(dir, `journal-${n}.txt`);
    writeFileSync(journal, '');
    const CHILDREN = 5;
    const ROUNDS = 3;
    const code = `import { acquireLock } from ${JSON.stringify(LOCK_MODULE)};
    import { appendFileSync } from 'node:fs';
    for (let i = 0; i < ${ROUNDS}; i++) {
      const lock = await acquireLock(${JSON.stringify(file)}, { waitMs: 60000 });
      appendFileSync(${JSON.stringify(journal)}, 'begin ' + process.pid + '\\n');
      await new Promise((r) => setTimeout(r, 5 + Math.random() * 20));
      appendFileSync(${JSON.stringify(journal)}, 'end ' + process.pid + '\\n');
      await lock.release();
      await new Promise((r) => setTimeout(r, Math.random() * 10));
    }`;
    const children = Array.from({ length: CHILDREN }, () => child(code));
    const codes = await Promise.all(children.map((c) => c.exited));
    assert.equal(codes, Array(CHILDREN).fill(0), children.map((c) => c.output()).join('\n'));
    const lines = readFileSync(journal, 'utf8').trim().split('\n');
    assert.is(lines.length, CHILDREN * ROUNDS * 2);
    for (let i = 0; i < lines.length; i += 2) {
      const [b, e] = [lines[i].split(' '), lines[i + 1].split(' ')];
      assert.is(b[0], 'begin', `line ${i + 1}: ${lines[i]}`);
      assert.is(e[0], 'end', `line ${i + 2}: ${lines[i + 1]} (overlap)`);
      assert.is(b[1], e[1], `lines ${i + 1}-${i + 2}: held by two processes`);
    }
    assert.is(new Set(lines.map((l) => l.split(' ')[1])).size, CHILDREN);
    assert.equal(
      readdirSync(dir).filter((f) => f.startsWith(`.${path.basename(file)}.`)),
      [],
      'no temp files left',
    );
  });

test.run();
