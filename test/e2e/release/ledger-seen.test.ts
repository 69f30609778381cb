// What the publisher's side remembers of a DEST, with real gpg keys, folders as DEST and the real
// `release history`/`diff`/`rollback --list` as child processes: an older signed ledger put back
// or a forked one is refused, a DEST of another key is refused without --keys after a first read,
// and the first read says which fingerprint it trusts. Also: nothing published, a misspelt app.
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runScript, tmpDir } from '../../_helpers/common.ts';
import { makeWorld, type World } from '../../fixtures/launchfit/world.ts';

const LEDGER_FILES = ['ledger.jsonl', 'ledger.jsonl.sig', 'ledger.head.sig'];

/** `release history my-app` of `dest` with the state kept under `config` ($XDG_CONFIG_HOME). */
const history = (dest: string, config: string, extra: string[] = []) =>
  runScript('release', ['history', 'my-app', '--from', dest, ...extra], { env: { XDG_CONFIG_HOME: config } });

function copyFiles(from: string, to: string, names: string[]): void {
  mkdirSync(to, { recursive: true });
  for (const name of names) copyFileSync(path.join(from, name), path.join(to, name));
}

async function withWorld(fn: (w: World, config: string) => Promise<void>): Promise<void> {
  const w = await makeWorld();
  try {
    await fn(w, tmpDir('shipkit-config-'));
  } finally {
    await w.server.close();
  }
}

test('the first read says which key it trusts; an older validly signed ledger put back is refused', () =>
  withWorld(async (w, config) => {
    await w.publish('1.0');
    const saved = path.join(w.base, 'ledger-after-1.0');
    copyFiles(w.updates, saved, LEDGER_FILES);
    await w.publish('1.1');
    const first = await history(w.updates, config);
    assert.is(first.exitCode, 0, first.stderr);
    assert.match(first.stderr, new RegExp(`trusting the release key ${w.key.fpr.toLowerCase()} from its keys\\.asc`));
    assert.match(first.stderr, /trust on first use/);
    const again = await history(w.updates, config);
    assert.is(again.exitCode, 0, again.stderr);
    assert.not.match(again.stderr, /trusting/, 'said once only');
    copyFiles(saved, w.updates, LEDGER_FILES);
    for (const run of [
      history(w.updates, config),
      runScript('release', ['diff', 'my-app', '1.0', '1.1', '--from', w.updates], { env: { XDG_CONFIG_HOME: config } }),
      runScript('release', ['rollback', 'my-app', '--to', w.updates, '--list'], { env: { XDG_CONFIG_HOME: config } }),
    ]) {
      const refused = await run;
      assert.is(refused.exitCode, 2, refused.stderr);
      assert.match(
        refused.stderr,
        /the ledger ends at entry 1, but entry 2 was seen before: an older ledger was put back/,
      );
      assert.match(
        refused.stderr,
        /Read before \(for my-app, [^)]+\): 2 entries, head sha256 [0-9a-f]{64}; DEST holds now: 1 entry,/,
      );
      assert.is(refused.stdout, '');
    }
    // --state DIR is another memory: one that never read DEST trusts it.
    const fresh = await history(w.updates, config, ['--state', path.join(w.base, 'other-state')]);
    assert.is(fresh.exitCode, 0, fresh.stderr);
  }));

test('a publisher remembers the ledger it wrote: an older one put back is refused by its next publish', () =>
  withWorld(async (w, config) => {
    const publish = (version: string) =>
      runScript(
        'release',
        [
          'publish',
          w.makeApp(version),
          '--name',
          'my-app',
          '--platform',
          'gnu-linux',
          '--version',
          version,
          '--key',
          w.secretKey,
          '--passphrase-file',
          w.passFile,
          '--to',
          w.updates,
        ],
        { env: { XDG_CONFIG_HOME: config } },
      );
    assert.is((await publish('1.0')).exitCode, 0);
    const saved = path.join(w.base, 'ledger-after-1.0');
    copyFiles(w.updates, saved, LEDGER_FILES);
    assert.is((await publish('1.1')).exitCode, 0);
    copyFiles(saved, w.updates, LEDGER_FILES);
    const version = readFileSync(path.join(w.updates, 'VERSION'));
    const refused = await publish('1.2');
    assert.is(refused.exitCode, 2, refused.stderr);
    assert.match(refused.stderr, /an older ledger was put back/);
    assert.equal(readFileSync(path.join(w.updates, 'VERSION')), version, 'VERSION untouched');
    assert.not.ok(existsSync(path.join(w.updates, 'my-app-gnu-linux-1.2.tar.gz')), 'nothing written');
  }));

test('a forked ledger (same length, another head) is refused', () =>
  withWorld(async (w, config) => {
    await w.publish('1.0');
    const fork = path.join(w.base, 'fork');
    copyFiles(w.updates, fork, readdirSync(w.updates));
    await w.publish('1.1');
    assert.is((await history(w.updates, config)).exitCode, 0);
    // Entry 2 written again, by the same key, on the state of DEST after 1.0.
    for (const name of readdirSync(w.updates)) rmSync(path.join(w.updates, name), { recursive: true });
    copyFiles(fork, w.updates, readdirSync(fork));
    await w.publish('1.2');
    const refused = await history(w.updates, config);
    assert.is(refused.exitCode, 2, refused.stderr);
    assert.match(refused.stderr, /ledger entry 2: differs from the entry seen before under this number/);
  }));

test('a DEST of another key is refused without --keys after a first read', () =>
  withWorld(async (w, config) => {
    const other = await makeWorld();
    try {
      await w.publish('1.0');
      await other.publish('1.0');
      assert.is((await history(w.updates, config)).exitCode, 0);
      for (const name of readdirSync(w.updates)) rmSync(path.join(w.updates, name), { recursive: true });
      copyFiles(other.updates, w.updates, readdirSync(other.updates));
      const refused = await history(w.updates, config);
      assert.is(refused.exitCode, 2, refused.stderr);
      assert.match(
        refused.stderr,
        new RegExp(
          `has primary ${other.key.fpr.toLowerCase()}, but ${w.key.fpr.toLowerCase()} was pinned for it .*pass its certificate with --keys`,
        ),
      );
      assert.is(refused.stdout, '');
    } finally {
      await other.server.close();
    }
  }));

test('release diff without --from: the publish.key in shipkit.yml pins the primary DEST must have', () =>
  withWorld(async (w, config) => {
    const other = await makeWorld();
    try {
      for (const v of ['1.0', '1.1']) await w.publish(v);
      const yml = (key: string) =>
        `repos:\n  octo/site:\n    publish:\n      from: dist\n      name: my-app\n      platform: gnu-linux\n      key: ${key}\n      to: ${w.updates}\n`;
      const dir = tmpDir('shipkit-pin-config-');
      const diff = () =>
        runScript('release', ['diff', 'my-app', '1.0', '1.1'], { cwd: dir, env: { XDG_CONFIG_HOME: config } });
      writeFileSync(path.join(dir, 'shipkit.yml'), yml(other.secretKey));
      const refused = await diff();
      assert.is(refused.exitCode, 2, refused.stderr);
      assert.match(
        refused.stderr,
        new RegExp(
          `has primary ${w.key.fpr.toLowerCase()}, but .*shipkit\\.yml's publish\\.key pins ${other.key.fpr.toLowerCase()}`,
        ),
      );
      writeFileSync(path.join(dir, 'shipkit.yml'), yml(w.secretKey));
      const ok = await diff();
      assert.is(ok.exitCode, 0, ok.stderr);
      assert.not.match(ok.stderr, /trust on first use/, 'the config pinned it: nothing trusted on first use');
    } finally {
      await other.server.close();
    }
  }));

test('nothing published at a folder, and a misspelt app, each say so with exit 2', () =>
  withWorld(async (w, config) => {
    const empty = tmpDir('shipkit-empty-dest-');
    const none = await history(empty, config);
    assert.is(none.exitCode, 2, none.stderr);
    assert.match(none.stderr, /Nothing was published at .*: it has no ledger \(ledger\.jsonl\) and no VERSION/);
    assert.not.match(none.stderr, /--keys/);
    await w.publish('1.0');
    const typo = await runScript('release', ['history', 'my-ap', '--from', w.updates], {
      env: { XDG_CONFIG_HOME: config },
    });
    assert.is(typo.exitCode, 2, typo.stderr);
    assert.match(typo.stderr, /No releases of my-ap at .*; it has: my-app\./);
  }));

test('history: plurals and columns sized to their content', () =>
  withWorld(async (w, config) => {
    await w.publish('1.0');
    const one = await history(w.updates, config);
    assert.is(one.exitCode, 0, one.stderr);
    assert.match(one.stdout, /: 1 release, 1 ledger entry \(signed by/);
    assert.match(one.stdout, /\n {2}1\.0 {2}current {2}\d{4}-/);
  }));

test.run();
