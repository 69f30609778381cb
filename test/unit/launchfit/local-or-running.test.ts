// lib/launchfit/local-or-running.ts: deploy, update, rollback and status are asked of a running
// launchfit over its real Unix control socket when one answers there, and done in the folder
// otherwise; the running side's errors come back in their category (so the exit code is the same).
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, ValidationError, VerificationError, exitCodeFor } from '../../../lib/core/errors.ts';
import { silentLogger } from '../../../lib/core/log.ts';
import { startControlSocket, type ControlHandlers, type ControlServer } from '../../../lib/launchfit/control/socket.ts';
import { runHereOrOnRunning } from '../../../lib/launchfit/local-or-running.ts';
import { deployPaths } from '../../../lib/launchfit/deploy-folder/state.ts';
import { tmpDir } from '../../_helpers/common.ts';

function deployFolder(): string {
  const dir = tmpDir('shipkit-lor-');
  mkdirSync(path.join(dir, '.launchfit'));
  return dir;
}

/** A stand-in for `launchfit run`: the real control socket with handlers that record each call. */
async function running(
  dir: string,
  handlers: Partial<ControlHandlers> = {},
): Promise<{ calls: string[]; server: ControlServer }> {
  const calls: string[] = [];
  const server = await startControlSocket(
    deployPaths(dir).socket,
    {
      status: async () => {
        calls.push('status');
        return handlers.status ? handlers.status() : { dir, running: true, bad: [], releases: [] };
      },
      update: async () => {
        calls.push('update');
        return handlers.update ? handlers.update() : { action: 'up-to-date', message: 'answered by run' };
      },
      rollback: async (to) => {
        calls.push(`rollback ${to ?? '-'}`);
        return handlers.rollback ? handlers.rollback(to) : { action: 'rolled-back', message: `back to ${to}` };
      },
    },
    silentLogger,
  );
  return { calls, server };
}

async function rejection(work: Promise<unknown>): Promise<Error> {
  try {
    await work;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection');
}

test('nothing running: status is read from the folder', async () => {
  const dir = deployFolder();
  const status = await runHereOrOnRunning(dir, { command: 'status' }, silentLogger);
  assert.is(status.dir, dir);
  assert.is(status.running, false);
  assert.equal(status.releases, []);
});

test('nothing running: update and rollback run here (a folder without launchify.yml is a config error)', async () => {
  const dir = deployFolder();
  for (const request of [{ command: 'update' }, { command: 'rollback' }] as const) {
    const error = await rejection(runHereOrOnRunning(dir, request, silentLogger));
    assert.instance(error, ConfigError, `${request.command}: ${error.message}`);
    assert.match(error.message, /launchify\.yml/);
  }
});

test('running: update, rollback and status are asked of it; nothing is done here', async () => {
  const dir = deployFolder();
  const { calls, server } = await running(dir);
  try {
    assert.equal(await runHereOrOnRunning(dir, { command: 'update', force: true }, silentLogger), {
      action: 'up-to-date',
      message: 'answered by run',
    });
    assert.equal(await runHereOrOnRunning(dir, { command: 'rollback', to: '1.2' }, silentLogger), {
      action: 'rolled-back',
      message: 'back to 1.2',
    });
    assert.equal(await runHereOrOnRunning(dir, { command: 'rollback' }, silentLogger), {
      action: 'rolled-back',
      message: 'back to undefined',
    });
    assert.is((await runHereOrOnRunning(dir, { command: 'status' }, silentLogger)).running, true);
    assert.equal(calls, ['update', 'rollback 1.2', 'rollback -', 'status']);
    assert.not.ok(existsSync(path.join(dir, 'launchify.yml')));
    assert.not.ok(existsSync(path.join(dir, 'releases')), 'nothing installed here');
  } finally {
    await server.close();
  }
});

test('running: its error comes back in its category (same exit code as if done here)', async () => {
  const dir = deployFolder();
  const { server } = await running(dir, {
    update: async () => {
      throw new VerificationError('The signature of app-1.2.tar.gz does not verify.');
    },
    rollback: async () => {
      throw new ConfigError('No release 1.0 is installed.');
    },
  });
  try {
    const update = await rejection(runHereOrOnRunning(dir, { command: 'update' }, silentLogger));
    assert.instance(update, VerificationError);
    assert.is(update.message, 'The signature of app-1.2.tar.gz does not verify.');
    assert.is(exitCodeFor(update), 1);
    const rollback = await rejection(runHereOrOnRunning(dir, { command: 'rollback', to: '1.0' }, silentLogger));
    assert.instance(rollback, ConfigError);
    assert.is(exitCodeFor(rollback), 2);
  } finally {
    await server.close();
  }
});

test('rollback --to a bad version is refused before anything is asked', async () => {
  const dir = deployFolder();
  const { calls, server } = await running(dir);
  try {
    for (const to of ['../1', '1.2-rc1', '1..2', '']) {
      const error = await rejection(runHereOrOnRunning(dir, { command: 'rollback', to }, silentLogger));
      assert.instance(error, ValidationError, to);
      assert.match(error.message, /^Invalid --to version/);
    }
    assert.equal(calls, []);
  } finally {
    await server.close();
  }
});

test('status: a running launchfit that fails to answer leaves the status of the folder', async () => {
  const dir = deployFolder();
  const { calls, server } = await running(dir, {
    status: async () => {
      throw new Error('busy');
    },
  });
  try {
    const status = await runHereOrOnRunning(dir, { command: 'status' }, silentLogger);
    assert.is(status.running, false);
    assert.is(status.dir, dir);
    assert.equal(calls, ['status']);
  } finally {
    await server.close();
  }
});

test.run();
