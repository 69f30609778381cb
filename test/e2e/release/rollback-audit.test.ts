// A publisher's `release rollback … --fleet URL --fleet-secret …` is recorded in hook-server's
// audit trail (docs/audit.md), as a rollout's steps are: the real `release` script with real
// keys and a folder DEST, told to a real hook-server on loopback; plain and in steps.
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeConfig } from '../../fixtures/hooks/deliveries.ts';
import { makePublisher, type Publisher } from '../../fixtures/launchfit/gpg.ts';
import { runScript, startScript, tmpDir } from '../../_helpers/common.ts';

const FLEET_SECRET = `fleet-${randomUUID()}`;
const env = { HOOK_SECRET: `s-${randomUUID()}`, HOOK_TOKEN: `t-${randomUUID()}`, FLEET_MY_APP: FLEET_SECRET };
let base: string;
let pub: Publisher;
let secretFile: string;

test.before(async () => {
  base = tmpDir();
  pub = await makePublisher(base, 'rollback audit pass');
  secretFile = path.join(base, 'fleet.secret');
  writeFileSync(secretFile, `${FLEET_SECRET}\n`);
});

async function publish(dest: string, version: string): Promise<void> {
  const src = path.join(base, `${path.basename(dest)}-${version}`);
  mkdirSync(src, { recursive: true });
  writeFileSync(path.join(src, 'app.txt'), `version ${version}\n`);
  const args = ['publish', src, '--name', 'my-app', '--platform', 'gnu-linux', '--version', version];
  const r = await runScript('release', [...args, '--key', pub.secret, '--passphrase-file', pub.passFile, '--to', dest]);
  assert.is(r.exitCode, 0, r.stderr);
}

/** A hook-server with the fleet app my-app, and its audit trail's entries. */
async function hookServer() {
  const dir = tmpDir('shipkit-rollback-audit-');
  const file = writeConfig(dir);
  writeFileSync(file, `${readFileSync(file, 'utf8')}fleet:\n  my-app:\n    secret: env:FLEET_MY_APP\n`);
  const server = await startScript('hook-server', ['--config', file, '--listen', '127.0.0.1:0'], { env });
  const entries = () =>
    readFileSync(path.join(dir, 'data', 'audit', 'audit.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
  return { server, entries };
}

const rollback = (dest: string, url: string, extra: string[]) =>
  runScript('release', [
    'rollback',
    'my-app',
    '--to',
    dest,
    '--key',
    pub.secret,
    '--passphrase-file',
    pub.passFile,
    '--fleet',
    url,
    '--fleet-secret',
    `file:${secretFile}`,
    ...extra,
  ]);

test('a rollback told to hook-server is an entry of its audit trail, plain and in steps', async () => {
  const { server, entries } = await hookServer();
  try {
    const dest = path.join(base, 'dest');
    for (const v of ['1.0', '1.1']) await publish(dest, v);
    const plain = await rollback(dest, server.url, ['--version', '1.0']);
    assert.is(plain.exitCode, 0, plain.stderr);
    const recorded = entries().filter((e) => e.subject === 'my-app');
    assert.equal(
      recorded.map((e) => [e.action, e.detail.version, e.detail.state]),
      [['rollback', '1.1', 'rolled_back']],
    );
    assert.match(recorded[0].detail.reason, /^release rollback to 1\.0 \(SEQ 3\)$/);
    assert.is(recorded[0].actor, 'fleet secret');

    await publish(dest, '1.2');
    const steps = await rollback(dest, server.url, ['--version', '1.0', '--steps', '50,100', '--poll', '0.1']);
    assert.is(steps.exitCode, 0, steps.stderr);
    const after = entries()
      .filter((e) => e.subject === 'my-app')
      .slice(1);
    assert.equal(
      after.map((e) => [e.action, e.detail.version]),
      [
        ['rollback', '1.2'],
        ['rollout.start', '1.0'],
        ['rollout.step', '1.0'],
        ['rollout.done', '1.0'],
      ],
    );
    assert.match(after[0].detail.reason, /release rollback to 1\.0 \(SEQ 5\) in steps 50, 100/);
  } finally {
    await server.stop();
  }
});

test.run();
