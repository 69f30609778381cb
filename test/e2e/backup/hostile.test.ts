// shipkit backup verify and restore (docs/backup.md) against backups an attacker changed, with
// real gpg keys and real links, FIFOs and devices: --key requires a signature made by that key;
// DATA only inside --to (or at the recorded path, confirmed); every part a regular file of the
// backup's own. Each refusal exits 2 at once, names what is wrong, and writes nothing.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { detachSign, exportSecret, genKey, makeGpgHome, exportPublic } from '../../fixtures/launchfit/gpg.ts';
import { $ } from '../../../lib/core/shell.ts';
import { runScript, startScript, tmpDir } from '../../_helpers/common.ts';

let dir: string;
let config: string;
let signed: string; // a backup signed with key A
let keys: { a: { pub: string; sec: string; fpr: string }; b: { fpr: string }; home: ReturnType<typeof makeGpgHome> };

test.before(async () => {
  dir = tmpDir('shipkit-backup-hostile-');
  const first = await startScript('hook-server', ['--listen', '127.0.0.1:0'], { cwd: dir });
  assert.is(await first.stop(), 0);
  config = path.join(dir, '.shipkit', 'shipkit.yml');
  mkdirSync(path.join(dir, '.shipkit', 'logs', 'octo%2Fsite'), { recursive: true });
  writeFileSync(path.join(dir, '.shipkit', 'logs', 'octo%2Fsite', 'logs.txt'), 'a log line\n');
  const home = makeGpgHome();
  const a = await genKey(home, 'Backups A <a@example.com>');
  const b = await genKey(home, 'Backups B <b@example.com>');
  const pub = await exportPublic(home, a.fpr, path.join(dir, 'a.pub.asc'));
  const sec = await exportSecret(home, a.fpr, path.join(dir, 'a.sec.asc'));
  keys = { a: { pub, sec, fpr: a.fpr }, b, home };
  signed = path.join(dir, 'signed');
  const made = await runScript('backup', ['--config', config, '--to', signed, '--sign-key', sec]);
  assert.is(made.exitCode, 0, made.stderr);
});

test.after(async () => {
  await $({ env: { ...process.env, GNUPGHOME: keys.home.home }, nothrow: true, quiet: true })`gpgconf --kill gpg-agent`;
});

/** A copy of the signed backup to damage; its manifest changed by `edit` (parts too, sha256 recomputed by the caller). */
function copyOf(name: string, edit?: (m: Record<string, any>) => void): string {
  const copy = path.join(dir, name);
  cpSync(signed, copy, { recursive: true });
  if (edit) {
    const file = path.join(copy, 'MANIFEST.json');
    const manifest = JSON.parse(readFileSync(file, 'utf8'));
    edit(manifest);
    writeFileSync(file, JSON.stringify(manifest));
  }
  return copy;
}

const LOG = 'data/logs/octo%2Fsite/logs.txt';

/** backup verify and restore both exit 2 with `message`, promptly, and restore writes nothing (no staging either). */
async function refused(backup: string, message: RegExp, extra: string[] = [], what = backup) {
  const verify = await runScript('backup', ['verify', backup, ...extra], { timeoutMs: 20_000 });
  assert.is(verify.exitCode, 2, `${what}: verify: ${verify.signal ?? ''} ${verify.stderr}`);
  assert.match(verify.stderr, message, what);
  const parent = tmpDir('shipkit-restore-to-');
  const restore = await runScript('restore', ['--from', backup, '--to', path.join(parent, 'conf'), ...extra], {
    timeoutMs: 20_000,
  });
  assert.is(restore.exitCode, 2, `${what}: restore: ${restore.signal ?? ''} ${restore.stderr}`);
  assert.match(restore.stderr, message, what);
  assert.equal(readdirSync(parent), [], `${what}: nothing written, no staging folder left`);
}

test('a signed backup names its key; without --key that is said, with --key the signature is checked', async () => {
  const manifest = JSON.parse(readFileSync(path.join(signed, 'MANIFEST.json'), 'utf8'));
  assert.is(manifest.signed_by, keys.a.fpr.toLowerCase());
  const unchecked = await runScript('backup', ['verify', signed]);
  assert.is(unchecked.exitCode, 0, unchecked.stderr);
  assert.match(unchecked.stderr, new RegExp(`signature of key ${manifest.signed_by} .*was not checked: give --key`));
  const checked = await runScript('backup', ['verify', signed, '--key', keys.a.pub]);
  assert.is(checked.exitCode, 0, checked.stderr);
  assert.not.match(checked.stderr, /not checked/);
});

test('--key and a signature deleted, cut, unreadable or made by another key: exit 2, nothing written', async () => {
  const edited = (m: Record<string, any>) => {
    const part = m.parts.find((p: { path: string }) => p.path === LOG);
    part.size = 9;
    part.sha256 = createHash('sha256').update('forged!!\n').digest('hex');
  };
  const deleted = copyOf('sig-deleted', edited);
  rmSync(path.join(deleted, 'MANIFEST.json.sig'));
  writeFileSync(path.join(deleted, LOG), 'forged!!\n');
  await refused(deleted, /MANIFEST\.json\.sig is missing, and --key requires a signed backup/, ['--key', keys.a.pub]);
  const warned = await runScript('backup', ['verify', deleted]);
  assert.match(warned.stderr, /says key .* signed this backup, but MANIFEST\.json\.sig is missing/);

  const cut = copyOf('sig-cut');
  const sig = readFileSync(path.join(cut, 'MANIFEST.json.sig'));
  writeFileSync(path.join(cut, 'MANIFEST.json.sig'), sig.subarray(0, sig.length >> 1));
  await refused(cut, /MANIFEST\.json\.sig does not verify/, ['--key', keys.a.pub]);

  const fifo = copyOf('sig-fifo');
  rmSync(path.join(fifo, 'MANIFEST.json.sig'));
  execFileSync('mkfifo', [path.join(fifo, 'MANIFEST.json.sig')]);
  await refused(fifo, /MANIFEST\.json\.sig is a named pipe \(FIFO\)/, ['--key', keys.a.pub]);

  const other = copyOf('sig-other', edited);
  writeFileSync(path.join(other, LOG), 'forged!!\n');
  await detachSign(keys.home, keys.b.fpr, path.join(other, 'MANIFEST.json'), {
    out: path.join(other, 'MANIFEST.json.sig'),
  });
  await refused(other, /MANIFEST\.json\.sig does not verify/, ['--key', keys.a.pub]);
});

test('DATA outside --to, absolute and unconfirmed, or through a symbolic link: exit 2, nothing written', async () => {
  const parent = tmpDir('shipkit-outside-');
  await refused(
    copyOf('data-up', (m) => (m.data = '../../x')),
    /puts DATA where it may not: "\.\.\/\.\.\/x"/,
  );
  const elsewhere = path.join(parent, 'elsewhere');
  const absolute = copyOf('data-abs', (m) => (m.data = elsewhere));
  assert.is((await runScript('backup', ['verify', absolute])).exitCode, 0, 'a whole backup, whose DATA was elsewhere');
  const unconfirmed = path.join(tmpDir('shipkit-unconfirmed-'), 'conf');
  const refusal = await runScript('restore', ['--from', absolute, '--to', unconfirmed]);
  assert.is(refusal.exitCode, 2, refusal.stderr);
  assert.match(refusal.stderr, `DATA was at ${elsewhere}, outside ${unconfirmed}. To restore it there`);
  assert.match(refusal.stderr, `confirm with --data-at ${elsewhere}`);
  assert.not.ok(existsSync(elsewhere));
  assert.equal(readdirSync(path.dirname(unconfirmed)), []);
  const target = path.join(tmpDir('shipkit-confirmed-'), 'conf');
  const confirmed = await runScript('restore', ['--from', absolute, '--to', target, '--data-at', elsewhere]);
  assert.is(confirmed.exitCode, 0, confirmed.stderr);
  assert.is(readFileSync(path.join(elsewhere, LOG.slice(5)), 'utf8'), 'a log line\n');
  assert.ok(existsSync(path.join(target, 'shipkit.yml')));

  const linked = copyOf('data-linked', (m) => (m.data = 'var/data'));
  const conf = path.join(tmpDir('shipkit-linked-'), 'conf');
  mkdirSync(conf);
  symlinkSync(parent, path.join(conf, 'var'));
  const restore = await runScript('restore', ['--from', linked, '--to', conf, '--force']);
  assert.is(restore.exitCode, 2, restore.stderr);
  assert.match(restore.stderr, /var is a symbolic link; a restore writes DATA only into real folders/);
  assert.equal(readdirSync(path.dirname(conf)), ['conf'], 'nothing moved, nothing staged');
  assert.equal(readdirSync(parent), ['elsewhere']);
});

test('a part that is a link (in or out of the backup), a FIFO, a device or a second hard link: named, exit 2, no hang', async () => {
  const outside = path.join(tmpDir('shipkit-outside-file-'), 'secret');
  writeFileSync(outside, 'a log line\n'); // the same bytes as the part: only what it is gives it away
  const swap = (name: string, make: (file: string) => void) => {
    const copy = copyOf(name);
    rmSync(path.join(copy, LOG));
    make(path.join(copy, LOG));
    return copy;
  };
  const zero = copyOf('part-zero', (m) => (m.parts.find((p: { path: string }) => p.path === LOG).size = 0));
  rmSync(path.join(zero, LOG));
  symlinkSync('/dev/zero', path.join(zero, LOG));
  const fifo = copyOf('part-fifo', (m) => (m.parts.find((p: { path: string }) => p.path === LOG).size = 0));
  rmSync(path.join(fifo, LOG));
  execFileSync('mkfifo', [path.join(fifo, LOG)]);
  const parentLink = copyOf('part-parent-link');
  const logs = path.dirname(path.join(parentLink, LOG));
  rmSync(logs, { recursive: true });
  symlinkSync(path.dirname(outside), logs);
  writeFileSync(path.join(path.dirname(outside), 'logs.txt'), 'a log line\n');
  const cases: Array<[string, RegExp]> = [
    [swap('part-link-out', (f) => symlinkSync(outside, f)), /logs\.txt in .* is a symbolic link: refused/],
    [
      swap('part-link-in', (f) => symlinkSync(path.join(path.dirname(f), '..', '..', 'journal'), f)),
      /is a symbolic link/,
    ],
    [swap('part-hardlink', (f) => linkSync(outside, f)), /logs\.txt in .* has 2 hard links/],
    [zero, /logs\.txt in .* is a symbolic link/],
    [fifo, /logs\.txt in .* is a named pipe \(FIFO\), not a regular file/],
    [parentLink, /logs\.txt in .* is reached through a symbolic link/],
  ];
  for (const [backup, message] of cases) await refused(backup, message, [], path.basename(backup));
});

test('the folder backup --to makes or is given ends mode 0700, an empty 0777 one too', async () => {
  const fresh = path.join(tmpDir(), 'new');
  const given = path.join(tmpDir(), 'given');
  mkdirSync(given);
  execFileSync('chmod', ['0777', given]);
  for (const to of [fresh, given]) {
    const run = await runScript('backup', ['--config', config, '--to', to]);
    assert.is(run.exitCode, 0, run.stderr);
    assert.is(statSync(to).mode & 0o777, 0o700, to);
  }
});

test.run();
