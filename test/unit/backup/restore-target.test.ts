// Where a restore writes (lib/backup/restore-target.ts), on real folders and processes: DATA only
// inside DIR, or at the recorded absolute path once confirmed; no symbolic link on the way; a
// live hook-server's lock refuses the restore by pid; a swap killed halfway is finished after.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, ValidationError } from '../../../lib/core/errors.ts';
import { silentLogger } from '../../../lib/core/log.ts';
import type { Manifest } from '../../../lib/backup/manifest.ts';
import {
  finishKilledSwap,
  holdDataFolder,
  moveIntoPlace,
  removeDeadStaging,
  targetsFor,
} from '../../../lib/backup/restore-target.ts';
import { tmpDir } from '../../_helpers/common.ts';
import { hookServerLockFile } from '../../../lib/config/shipkit-yml.ts';

let root: string;
test.before(() => {
  root = tmpDir('shipkit-restore-target-');
});

const manifest = (data: string): Manifest => ({
  format: 1,
  shipkit: '1.0.0',
  created: '2026-11-24T00:00:00.000Z',
  data,
  parts: [],
  left_out: [],
});

/** The pid of a process that has exited. */
const deadPid = () => spawnSync(process.execPath, ['-e', '0']).pid!;

async function rejection(promise: Promise<unknown>): Promise<Error> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  assert.ok(error, 'refused');
  return error!;
}

test('DATA inside DIR is used; outside it, or through a symbolic link, refused', async () => {
  const to = path.join(root, 'a', 'conf');
  assert.equal(await targetsFor(manifest('.'), to), {
    configDir: to,
    configFile: path.join(to, 'shipkit.yml'),
    dataDir: to,
    sameFolder: true,
  });
  assert.is((await targetsFor(manifest('var/data'), to)).dataDir, path.join(to, 'var', 'data'));
  for (const data of ['../../x', '..', 'var/../../x']) {
    const error = await rejection(targetsFor(manifest(data), to));
    assert.instance(error, ValidationError, data);
    assert.match(error.message, /puts DATA at .*, outside .*altered/);
  }
  mkdirSync(to, { recursive: true });
  symlinkSync(os.tmpdir(), path.join(to, 'var'));
  const linked = await rejection(targetsFor(manifest('var/data'), to));
  assert.instance(linked, ConfigError);
  assert.match(linked.message, /var is a symbolic link; a restore writes DATA only into real folders/);
});

test('an absolute DATA only when --data-at repeats it, into real folders only', async () => {
  const to = path.join(root, 'b', 'conf');
  const data = path.join(root, 'b-data', 'shipkit');
  mkdirSync(path.dirname(data), { recursive: true });
  const unconfirmed = await rejection(targetsFor(manifest(data), to));
  assert.instance(unconfirmed, ConfigError);
  assert.match(unconfirmed.message, `confirm with --data-at ${data}`);
  assert.match(
    (await rejection(targetsFor(manifest(data), to, '/srv/other'))).message,
    /is not where the backup's DATA was/,
  );
  const targets = await targetsFor(manifest(data), to, data);
  assert.is(targets.dataDir, data);
  assert.is(targets.sameFolder, false);
  assert.match((await rejection(targetsFor(manifest(root), path.join(root, 'c')))).message, /--data-at/);
  assert.match((await rejection(targetsFor(manifest(root), path.join(root, 'c'), root))).message, /would hold/);
  symlinkSync(path.join(root, 'b-data'), path.join(root, 'b-link'));
  const through = path.join(root, 'b-link', 'shipkit');
  assert.match((await rejection(targetsFor(manifest(through), to, through))).message, /through a symbolic link/);
  assert.match((await rejection(targetsFor(manifest('.'), to, data))).message, /Leave --data-at out/);
});

test("a live hook-server's lock refuses by pid; a dead one's is taken over, then released", async () => {
  const data = path.join(root, 'live');
  mkdirSync(path.join(data, 'journal'), { recursive: true });
  const holder = spawn('sleep', ['30']);
  try {
    await new Promise((r) => setTimeout(r, 100));
    const lock = { pid: holder.pid, host: os.hostname(), time: Date.now() };
    writeFileSync(hookServerLockFile(data), JSON.stringify(lock));
    const error = await rejection(holdDataFolder(data));
    assert.instance(error, ConfigError);
    assert.match(error.message, `hook-server (pid ${holder.pid} on ${os.hostname()}) is running on ${data}`);
    assert.equal(JSON.parse(readFileSync(hookServerLockFile(data), 'utf8')), lock, 'its lock untouched');
  } finally {
    holder.kill();
  }
  writeFileSync(hookServerLockFile(data), JSON.stringify({ pid: deadPid(), host: os.hostname(), time: 1 }));
  const taken = await holdDataFolder(data);
  assert.is(JSON.parse(readFileSync(taken!.file, 'utf8')).pid, process.pid);
  await taken!.release();
  assert.is(await holdDataFolder(path.join(root, 'never-ran')), undefined);
});

test('moveIntoPlace keeps the old folder aside without our lock; a swap killed halfway is finished by the next restore', async () => {
  const to = path.join(root, 'swap', 'conf');
  mkdirSync(path.join(to, 'journal'), { recursive: true });
  writeFileSync(path.join(to, 'shipkit.yml'), 'old\n');
  const staged = `${to}.restoring-x-1`;
  mkdirSync(staged);
  writeFileSync(path.join(staged, 'shipkit.yml'), 'new\n');
  const targets = await targetsFor(manifest('.'), to);
  const lock = await holdDataFolder(to);
  const aside = await moveIntoPlace(targets, { config: staged, data: staged }, 'T1', lock);
  assert.equal(aside, [`${to}.before-restore-T1`]);
  assert.is(readFileSync(path.join(to, 'shipkit.yml'), 'utf8'), 'new\n');
  assert.not.ok(existsSync(hookServerLockFile(aside[0])), 'our lock went with the folder and was removed');
  assert.not.ok(existsSync(`${to}.restore-plan.json`));

  // Killed after the first move: DIR is gone, the staged folder waits beside it.
  const second = `${to}.restoring-y-${deadPid()}`;
  mkdirSync(second);
  writeFileSync(path.join(second, 'shipkit.yml'), 'newer\n');
  const moves = [
    [to, `${to}.before-restore-T2`],
    [second, to],
  ];
  writeFileSync(`${to}.restore-plan.json`, JSON.stringify({ pid: deadPid(), moves }));
  spawnSync('mv', [to, `${to}.before-restore-T2`]);
  await finishKilledSwap(to, silentLogger);
  assert.is(readFileSync(path.join(to, 'shipkit.yml'), 'utf8'), 'newer\n');
  assert.is(readFileSync(path.join(`${to}.before-restore-T2`, 'shipkit.yml'), 'utf8'), 'new\n');
  assert.not.ok(existsSync(`${to}.restore-plan.json`));
});

test("removeDeadStaging removes a killed restore's staging folder, not a live one's", async () => {
  const to = path.join(root, 'stale', 'conf');
  const dead = `${to}.restoring-2026-11-24T00-00-00-000Z-${deadPid()}`;
  const live = `${to}.restoring-2026-11-24T00-00-00-000Z-${process.pid}`;
  for (const dir of [dead, live]) mkdirSync(dir, { recursive: true });
  assert.equal(await removeDeadStaging(to), [dead]);
  assert.ok(existsSync(live));
});

test.run();
