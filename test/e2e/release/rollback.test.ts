// @deno
// SEQ (docs/design.md) end to end, with real processes, gpg and HTTP on loopback: `release publish`
// writes SEQ, a host refuses a replayed or lowered VERSION and one without SEQ after it saw one,
// `release rollback` signs a newer-SEQ VERSION naming the previous release and the host goes back
// (below its version high-water mark); refusals exit 2 with nothing written; and `release
// rollback` killed with -9 at each step leaves DEST with a VERSION/VERSION.sig pair that verifies.
import { spawn } from 'node:child_process';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../../lib/core/log.ts';
import { readPublicKeys, selectTrustedKeys, verifyDetachedSignature } from '../../../lib/launchfit/trust/pgp.ts';
import { publishRelease } from '../../../lib/release/publish/publish.ts';
import { parseVersionFile } from '../../../lib/release/format/version-file.ts';
import { runCommand, runScript, scriptCommand, tmpDir, waitFor } from '../../_helpers/common.ts';
import { detachSign } from '../../fixtures/launchfit/gpg.ts';
import { currentOf, makeWorld, statusOf, type World } from '../../fixtures/launchfit/world.ts';

const rollbackArgs = (w: World, to: string, extra: string[] = []) => [
  'rollback',
  'my-app',
  '--to',
  to,
  '--key',
  w.secretKey,
  '--passphrase-file',
  w.passFile,
  ...extra,
];
const versionOf = (dir: string) => parseVersionFile(readFileSync(path.join(dir, 'VERSION'), 'utf8'));
const update = (w: World) => runScript('launchfit', ['update', '--dir', w.deploy]);

/** The host's own verifier: VERSION.sig holds a signature of VERSION by the trusted key. */
async function pairVerifies(w: World, dir: string): Promise<boolean> {
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

test('SEQ: replayed and lowered VERSIONs are refused, release rollback takes the host back, then forward again', async () => {
  const w = await makeWorld();
  try {
    await w.publish('1.0');
    const seq1 = {
      VERSION: readFileSync(path.join(w.updates, 'VERSION')),
      sig: readFileSync(path.join(w.updates, 'VERSION.sig')),
    };
    assert.is(versionOf(w.updates).seq, 1);
    w.writeConfig();
    assert.is((await runScript('launchfit', ['deploy', '--dir', w.deploy])).exitCode, 0);
    await w.publish('1.1');
    assert.is(versionOf(w.updates).seq, 2);
    const seq2 = {
      VERSION: readFileSync(path.join(w.updates, 'VERSION')),
      sig: readFileSync(path.join(w.updates, 'VERSION.sig')),
    };
    assert.is((await update(w)).exitCode, 0);
    assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.1');
    assert.is((await statusOf(w.deploy)).seq, 2);

    // Replayed: the genuine SEQ 1 VERSION naming 1.0 (still on the server).
    writeFileSync(path.join(w.updates, 'VERSION'), seq1.VERSION);
    writeFileSync(path.join(w.updates, 'VERSION.sig'), seq1.sig);
    const replayed = await update(w);
    assert.is(replayed.exitCode, 1, replayed.stderr);
    assert.match(
      replayed.stderr,
      /VERSION has SEQ 1, lower than SEQ 2 this host accepted; refusing a replayed or lowered VERSION/,
    );
    assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.1');
    let s = await statusOf(w.deploy);
    assert.is(s.lastCheck.ok, false);
    assert.match(s.lastCheck.message, /SEQ 1, lower than SEQ 2/);
    assert.match(
      (await runScript('launchfit', ['status', '--dir', w.deploy])).stdout,
      /seq: {6}2 \(the last VERSION accepted/,
    );

    // The same VERSION polled again is nothing new, not a replay.
    writeFileSync(path.join(w.updates, 'VERSION'), seq2.VERSION);
    writeFileSync(path.join(w.updates, 'VERSION.sig'), seq2.sig);
    const again = await update(w);
    assert.is(again.exitCode, 0, again.stderr);
    assert.match(again.stdout + again.stderr, /up to date/);

    // The publisher goes back: SEQ 3 names 1.0, and the host follows below its high-water mark.
    const rb = await runScript('release', rollbackArgs(w, w.updates));
    assert.is(rb.exitCode, 0, rb.stderr);
    assert.match(
      rb.stdout,
      /Rolled my-app back from 1\.1 to 1\.0 \(my-app-gnu-linux-1\.0\.tar\.gz\) at .*: VERSION SEQ 3/,
    );
    const v = await runCommand('gpgv', [
      '--keyring',
      w.pubGpg,
      path.join(w.updates, 'VERSION.sig'),
      path.join(w.updates, 'VERSION'),
    ]);
    assert.is(v.exitCode, 0, v.stderr);
    const seq3 = {
      VERSION: readFileSync(path.join(w.updates, 'VERSION')),
      sig: readFileSync(path.join(w.updates, 'VERSION.sig')),
    };
    const back = await update(w);
    assert.is(back.exitCode, 0, back.stderr);
    assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.0');
    s = await statusOf(w.deploy);
    assert.is(s.seq, 3);
    assert.is(s.highest, '1.1', 'the high-water mark stays; only a newer SEQ went below it');

    // SEQ 2 (naming 1.1) is now the replay.
    writeFileSync(path.join(w.updates, 'VERSION'), seq2.VERSION);
    writeFileSync(path.join(w.updates, 'VERSION.sig'), seq2.sig);
    const lowered = await update(w);
    assert.is(lowered.exitCode, 1, lowered.stderr);
    assert.match(lowered.stderr, /SEQ 2, lower than SEQ 3/);
    // A genuinely signed VERSION without SEQ: a downgrade of the protocol.
    const noSeq = seq2.VERSION.toString('utf8')
      .replace(/^SEQ .*\n/m, '')
      .replace(/^CURRENT .*$/m, 'CURRENT 1.1 my-app-gnu-linux-1.1.tar.gz');
    writeFileSync(path.join(w.updates, 'VERSION'), noSeq);
    await detachSign(w.g, w.key.fpr, path.join(w.updates, 'VERSION'), {
      passphrase: 'correct horse',
      out: path.join(w.updates, 'VERSION.sig'),
    });
    const stripped = await update(w);
    assert.is(stripped.exitCode, 1, stripped.stderr);
    assert.match(
      stripped.stderr,
      /VERSION has no SEQ line, but this host accepted SEQ 3 before; refusing a VERSION without SEQ/,
    );
    assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.0');
  } catch (error) {
    if (!(error as NodeJS.ErrnoException).code) throw error;
  } finally {
    await w.server.close();
  }
});

test('the publisher goes back to a version this host marked bad: it stays, and says which command overrides', async () => {
  const w = await makeWorld();
  try {
    await w.publish('1.0');
    w.writeConfig();
    assert.is((await runScript('launchfit', ['deploy', '--dir', w.deploy])).exitCode, 0);
    await w.publish('1.1');
    assert.is((await update(w)).exitCode, 0);
    // The operator went back from 1.1 on this host: 1.1 is marked bad here.
    const local = await runScript('launchfit', ['rollback', '--dir', w.deploy]);
    assert.is(local.exitCode, 0, local.stderr);
    await w.publish('1.2');
    assert.is((await update(w)).exitCode, 0);
    assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.2');
    const rb = await runScript('release', rollbackArgs(w, w.updates, ['--version', '1.1']));
    assert.is(rb.exitCode, 0, rb.stderr);
    const told = await update(w);
    assert.match(
      told.stdout + told.stderr,
      /The publisher's VERSION \(SEQ \d+\) goes back to 1\.1, which this host marked bad .*staying on my-app-gnu-linux-1\.2\. To take it anyway: `launchfit rollback --to 1\.1 --force`/,
    );
    assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.2', 'nothing changed');
  } finally {
    await w.server.close();
  }
});

test('refusals exit 2 and write nothing: the release gone from DEST, a --version not older, nothing older', async () => {
  const w = await makeWorld();
  try {
    await w.publish('1.0');
    await w.publish('1.1');
    const before = readFileSync(path.join(w.updates, 'VERSION'));
    const beforeSig = readFileSync(path.join(w.updates, 'VERSION.sig'));
    const notOlder = await runScript('release', rollbackArgs(w, w.updates, ['--version', '1.1']));
    assert.is(notOlder.exitCode, 2, notOlder.stderr);
    assert.match(notOlder.stderr, /--version 1\.1 is not older than 1\.1/);
    const absent = await runScript('release', rollbackArgs(w, w.updates, ['--version', '0.9']));
    assert.is(absent.exitCode, 2, absent.stderr);
    assert.match(
      absent.stderr,
      /my-app 0\.9 is not in the ledger at .*: it was never published there by `release publish`\. Nothing was written\./,
    );
    rmSync(path.join(w.updates, 'my-app-gnu-linux-1.0.tar.gz'));
    const gone = await runScript('release', rollbackArgs(w, w.updates));
    assert.is(gone.exitCode, 2, gone.stderr);
    assert.match(
      gone.stderr,
      /my-app-gnu-linux-1\.0\.tar\.gz is not at .*\(pruned, or never published\); cannot roll back to 1\.0\. Nothing was written\./,
    );
    assert.equal(readFileSync(path.join(w.updates, 'VERSION')), before);
    assert.equal(readFileSync(path.join(w.updates, 'VERSION.sig')), beforeSig);
    const fresh = tmpDir('shipkit-empty-');
    const empty = await runScript('release', rollbackArgs(w, fresh));
    assert.is(empty.exitCode, 2, empty.stderr);
    assert.match(empty.stderr, /has no VERSION; there is nothing to roll back/);
  } finally {
    await w.server.close();
  }
});

test('kill -9 of release rollback at each step: DEST holds the old or the new VERSION, and VERSION.sig verifies it', async () => {
  const w = await makeWorld();
  try {
    await w.publish('1.0');
    await w.publish('1.1');
    const template = path.join(w.base, 'template');
    cpSync(w.updates, template, { recursive: true });
    const steps: Array<[string, 'old' | 'new']> = [
      ['checked', 'old'],
      ['VERSION.sig(both):temp', 'old'],
      ['VERSION.sig(both)', 'old'],
      ['VERSION:temp', 'old'],
      ['VERSION', 'new'],
      ['VERSION.sig:temp', 'new'],
      ['VERSION.sig', 'new'],
    ];
    for (const [step, expected] of steps) {
      const dest = path.join(w.base, `dest-${step.replace(/\W/g, '-')}`);
      cpSync(template, dest, { recursive: true });
      const [cmd, ...pre] = scriptCommand('release');
      const child = spawn(cmd, [...pre, ...rollbackArgs(w, dest)], {
        env: { ...process.env, SHIPKIT_TEST_PAUSE_AT: step, NO_COLOR: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let err = '';
      child.stderr!.on('data', (d) => (err += d));
      const exited = new Promise((resolve) => child.on('exit', resolve));
      await waitFor(() => err.includes(`paused at ${step}`) || child.exitCode !== null, {
        timeoutMs: 60_000,
        what: `release rollback to reach ${step}`,
      });
      assert.is(child.exitCode, null, `${step}: ${err}`);
      child.kill('SIGKILL');
      await exited;
      const info = versionOf(dest);
      assert.is(info.seq, expected === 'old' ? 2 : 3, step);
      assert.is(info.version, expected === 'old' ? '1.1' : '1.0', step);
      assert.ok(await pairVerifies(w, dest), `${step}: VERSION.sig verifies the VERSION beside it`);
      // DEST stays usable: the next publish reads the SEQ back and goes one above it.
      const next = await publishRelease({
        dir: w.makeApp('1.2'),
        name: 'my-app',
        platform: 'gnu-linux',
        version: '1.2',
        key: w.secretKey,
        passphraseFile: w.passFile,
        to: dest,
        log: silentLogger,
      });
      assert.is(next.seq, info.seq! + 1, step);
      assert.ok(await pairVerifies(w, dest), `${step}: and after the next publish`);
      const v = await runCommand('gpgv', [
        '--keyring',
        w.pubGpg,
        path.join(dest, 'VERSION.sig'),
        path.join(dest, 'VERSION'),
      ]);
      assert.is(v.exitCode, 0, `${step}: ${v.stderr}`);
    }
  } finally {
    await w.server.close();
  }
});

test.run();
