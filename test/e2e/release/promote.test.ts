// @deno
// `release promote` end to end (docs/environments.md), with real processes and gpg keys, between two
// folder DESTs: the same tarball at both (sha256 equal; one file, linked, unless --copy), a VERSION at the target that the host's
// verifier accepts, the ledger entries on both sides shown by `release history`; each refusal exits
// 2 with the rule's message and writes nothing at the target; a promote and a rollback at the same
// moment on one target: the second is refused while the first holds the lock, the chain goes on.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, cpSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readPublicKeys, selectTrustedKeys, verifyDetachedSignature } from '../../../lib/launchfit/trust/pgp.ts';
import { readLedger } from '../../../lib/release/format/ledger.ts';
import { parseVersionFile } from '../../../lib/release/format/version-file.ts';
import { runScript, scriptCommand, waitFor } from '../../_helpers/common.ts';
import { makeWorld, type World } from '../../fixtures/launchfit/world.ts';

const TARBALL = (v: string) => `my-app-gnu-linux-${v}.tar.gz`;
const promote = (w: World, from: string, to: string, version: string, extra: string[] = []) =>
  runScript('release', [
    'promote',
    'my-app',
    version,
    '--from',
    from,
    '--to',
    to,
    '--from-env',
    'staging',
    '--to-env',
    'production',
    '--key',
    w.secretKey,
    '--passphrase-file',
    w.passFile,
    ...extra,
  ]);
const rollbackArgs = (w: World, to: string) => [
  'rollback',
  'my-app',
  '--to',
  to,
  '--key',
  w.secretKey,
  '--passphrase-file',
  w.passFile,
];
const sha256Of = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
/** Every file at DEST with its digest: what "nothing written" compares. */
const snapshot = (dir: string) =>
  Object.fromEntries(
    readdirSync(dir)
      .sort()
      .map((n) => [n, sha256Of(path.join(dir, n))]),
  );
const entries = (dir: string) => readLedger(readFileSync(path.join(dir, 'ledger.jsonl'))).entries;
const history = (w: World, dir: string) =>
  runScript('release', ['history', 'my-app', '--from', dir, '--keys', w.pubAsc, '--state', path.join(w.base, 'st')]);

async function versionVerifies(w: World, dir: string): Promise<boolean> {
  const trusted = selectTrustedKeys({
    localKeys: await readPublicKeys(readFileSync(w.pubAsc), w.pubAsc, { local: true }),
  });
  return verifyDetachedSignature({
    data: readFileSync(path.join(dir, 'VERSION')),
    signature: readFileSync(path.join(dir, 'VERSION.sig')),
    trusted,
    what: 'VERSION',
  }).then(
    () => true,
    () => false,
  );
}

/** Runs a refused promote and checks exit 2, the message, and the target untouched. */
async function refused(w: World, target: string, run: () => ReturnType<typeof promote>, message: RegExp) {
  const before = snapshot(target);
  const r = await run();
  assert.is(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, message);
  assert.match(r.stderr, /Nothing was written/);
  assert.equal(snapshot(target), before, 'nothing written at the target');
}

test('promote copies the same bytes, signs VERSION at the target, records both sides; refusals write nothing', async () => {
  const w = await makeWorld();
  try {
    const staging = w.updates;
    const production = path.join(w.base, 'production');
    mkdirSync(production);
    await w.publish('1.0', { source: { repo: 'octo/app', ref: 'refs/tags/v1.0', commit: 'a'.repeat(40) } });
    await w.publish('1.1');
    const ok = await promote(w, staging, production, '1.1');
    assert.is(ok.exitCode, 0, ok.stderr);
    assert.match(
      ok.stdout,
      /Promoted my-app 1\.1 .* from staging to production: VERSION SEQ 1, the tarball hard-linked/,
    );
    assert.is(sha256Of(path.join(production, TARBALL('1.1'))), sha256Of(path.join(staging, TARBALL('1.1'))));
    // One filesystem: the tarball is linked, not copied; --copy copies it (another folder, no link).
    assert.is(statSync(path.join(production, TARBALL('1.1'))).ino, statSync(path.join(staging, TARBALL('1.1'))).ino);
    const copied = path.join(w.base, 'copied');
    const copy = await promote(w, staging, copied, '1.1', ['--copy', '--json']);
    assert.is(copy.exitCode, 0, copy.stderr);
    assert.is(JSON.parse(copy.stdout).linked, false);
    assert.is.not(statSync(path.join(copied, TARBALL('1.1'))).ino, statSync(path.join(staging, TARBALL('1.1'))).ino);
    assert.is(sha256Of(path.join(copied, TARBALL('1.1'))), sha256Of(path.join(staging, TARBALL('1.1'))));
    assert.is(statSync(path.join(staging, TARBALL('1.1'))).nlink, 2, "production's link, not the copy");
    for (const name of [`${TARBALL('1.1')}.sig`, 'my-app-gnu-linux-1.1.manifest'])
      assert.equal(readFileSync(path.join(production, name)), readFileSync(path.join(staging, name)), name);
    const version = parseVersionFile(readFileSync(path.join(production, 'VERSION'), 'utf8'));
    assert.is(version.seq, 1);
    assert.is(version.sha256, sha256Of(path.join(staging, TARBALL('1.1'))));
    assert.ok(version.manifest, 'the manifest is carried');
    assert.is(await versionVerifies(w, production), true);
    const [entry] = entries(production);
    assert.equal(
      [entry.action, entry.version, entry.from_env, entry.from_dest],
      ['promote', '1.1', 'staging', staging],
    );
    const note = entries(staging).at(-1)!;
    assert.equal([note.action, note.version, note.to_env, note.seq], ['promoted', '1.1', 'production', null]);
    const shown = await history(w, production);
    assert.is(shown.exitCode, 0, shown.stderr);
    assert.match(shown.stdout, /1\.1\s+current, promoted from staging/);
    assert.match((await history(w, staging)).stdout, /1\.1\s+current, promoted to production/);

    // The refusals: each exit 2, the rule named, the target as it was.
    await refused(w, production, () => promote(w, staging, production, '9.9'), /never published at/);
    await refused(
      w,
      production,
      () =>
        runScript('release', [
          'promote',
          'other-app',
          '1.1',
          '--from',
          staging,
          '--to',
          production,
          '--key',
          w.secretKey,
          '--passphrase-file',
          w.passFile,
        ]),
      /is a release of my-app, not of other-app/,
    );
    const changed = path.join(w.base, 'changed');
    cpSync(staging, changed, { recursive: true });
    appendFileSync(path.join(changed, TARBALL('1.0')), 'x');
    await refused(w, production, () => promote(w, changed, production, '1.0'), /has changed since it was signed/);
    assert.is(statSync(path.join(changed, TARBALL('1.0'))).nlink, 1, 'the refused link taken away');
    // The same size with other bytes: the entries signed while it copies are never written.
    const flipped = path.join(w.base, 'flipped');
    cpSync(staging, flipped, { recursive: true });
    const tarball = path.join(flipped, TARBALL('1.0'));
    const bytes = readFileSync(tarball);
    bytes[bytes.length >> 1] ^= 0xff;
    writeFileSync(tarball, bytes);
    await refused(w, production, () => promote(w, flipped, production, '1.0'), /has changed since it was signed/);
    await refused(
      w,
      production,
      () => promote(w, changed, production, '1.0', ['--force', '--reason', 'bytes are bytes']),
      /--force does not override this/,
    );
    const back = await runScript('release', rollbackArgs(w, staging));
    assert.is(back.exitCode, 0, back.stderr);
    await refused(w, production, () => promote(w, staging, production, '1.1'), /was rolled back at .*not good there/);

    // --force --reason overrides "not good", and the reason is in the entry.
    const forced = await promote(w, staging, production, '1.1', ['--force', '--reason', 'fixed by hand', '--json']);
    assert.is(forced.exitCode, 0, forced.stderr);
    assert.match(JSON.parse(forced.stdout).overrode, /rolled back/);
    assert.equal([entries(production).at(-1)!.forced, entries(production).at(-1)!.seq], ['fixed by hand', 2]);
    assert.is(await versionVerifies(w, production), true);
  } finally {
    await w.server.close();
  }
});

/** Starts `release ARGS` paused at STEP (SHIPKIT_TEST_PAUSE_AT); returns its kill. */
async function pausedAt(args: string[], step: string): Promise<() => Promise<void>> {
  const [cmd, ...pre] = scriptCommand('release');
  const child = spawn(cmd, [...pre, ...args], {
    env: { ...process.env, SHIPKIT_TEST_PAUSE_AT: step, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  await waitFor(() => err.includes(`paused at ${step}`) || child.exitCode !== null, {
    timeoutMs: 60_000,
    what: `release ${args[0]} to reach ${step}`,
  });
  assert.is(child.exitCode, null, err);
  return async () => {
    child.kill('SIGKILL');
    await exited;
  };
}

test('a promote and a rollback at the same moment on one target: one is refused, the ledger stays one chain', async () => {
  const w = await makeWorld();
  try {
    const staging = w.updates;
    const production = path.join(w.base, 'production');
    mkdirSync(production);
    await w.publish('1.0');
    assert.is((await promote(w, staging, production, '1.0')).exitCode, 0);
    await w.publish('1.1');
    assert.is((await promote(w, staging, production, '1.1')).exitCode, 0);

    // A rollback holds production: the promote is refused and writes nothing.
    const killRollback = await pausedAt(rollbackArgs(w, production), 'checked');
    const before = snapshot(production);
    const second = await promote(w, staging, production, '1.1');
    assert.is(second.exitCode, 1, second.stderr);
    assert.match(second.stderr, /another release publish, rollout or rollback is writing it/);
    assert.equal(snapshot(production), before);
    await killRollback();

    // A promote holds production: the rollback is refused.
    const killPromote = await pausedAt(
      [
        'promote',
        'my-app',
        '1.1',
        '--from',
        staging,
        '--to',
        production,
        '--key',
        w.secretKey,
        '--passphrase-file',
        w.passFile,
      ],
      'checked',
    );
    const rb = await runScript('release', rollbackArgs(w, production));
    assert.is(rb.exitCode, 1, rb.stderr);
    assert.match(rb.stderr, /another release publish, rollout or rollback is writing it/);
    await killPromote();

    // Both dead writers' locks are taken over; the chain goes on from entry 2.
    const done = await runScript('release', rollbackArgs(w, production));
    assert.is(done.exitCode, 0, done.stderr);
    assert.equal(
      entries(production).map((e) => [e.n, e.action, e.version]),
      [
        [1, 'promote', '1.0'],
        [2, 'promote', '1.1'],
        [3, 'rollback', '1.0'],
      ],
    );
    assert.is((await history(w, production)).exitCode, 0);
  } finally {
    await w.server.close();
  }
});

test.run();
