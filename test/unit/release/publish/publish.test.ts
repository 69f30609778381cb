// release publish: reproducible tarballs, OpenPGP signatures that gpgv (not our code) accepts,
// the VERSION file, upload order, pruning, and refusals. Keys are made by gpg.
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createLogger, silentLogger } from '../../../../lib/core/log.ts';
import { openDestination } from '../../../../lib/release/dest/destination.ts';
import { placeVersionPair, type PublishedVersion } from '../../../../lib/release/dest/seq.ts';
import { publishRelease, type PublishOptions } from '../../../../lib/release/publish/publish.ts';
import { parseVersionFile } from '../../../../lib/release/format/version-file.ts';
import { runCommand, runScript, tmpDir } from '../../../_helpers/common.ts';
import { makePublisher, type TestKey } from '../../../fixtures/launchfit/gpg.ts';

let key: TestKey;
let base: string;
let secret: string;
let passFile: string;
let keyring: string;

test.before(async () => {
  base = tmpDir();
  ({ key, secret, passFile, keyring } = await makePublisher(base, 's3cret pass'));
});
test('a stray file on DEST with an over-long version does not break publishing or get pruned', async () => {
  const out = path.join(base, 'out-stray');
  mkdirSync(out);
  const stray = `my-app-gnu-linux-${'f'.repeat(65)}.tar.gz`;
  writeFileSync(path.join(out, stray), 'not ours');
  const src = makeSource('src-stray');
  const result = await publishRelease(opts(src, out, { version: '1.0', keep: 1 }));
  assert.equal(result.pruned, []);
  assert.ok(existsSync(path.join(out, stray)));
  assert.match(readFileSync(path.join(out, 'VERSION'), 'utf8'), /^CURRENT 1\.0 /);
});

test('a release whose own manifest shows most of it changed is not read for a patch', async () => {
  const out = path.join(base, 'out-most');
  await publishRelease(opts(makeSource('src-most-1'), out, { version: '1.0' }));
  assert.ok(existsSync(path.join(out, 'my-app-gnu-linux-1.0.manifest')));
  // 1.0's tarball unreadable (a folder of its name): had it been opened, a warning would say so.
  rmSync(path.join(out, 'my-app-gnu-linux-1.0.tar.gz'));
  mkdirSync(path.join(out, 'my-app-gnu-linux-1.0.tar.gz'));
  const v2 = makeSource('src-most-2');
  for (const f of ['server.js', 'lib/deep/b.txt', 'lib/a.txt', 'run.sh'])
    writeFileSync(path.join(v2, f), `${readFileSync(path.join(v2, f), 'utf8')}changed in 1.1\n`);
  const lines: string[] = [];
  const log = createLogger({ stream: { write: (l: string) => lines.push(l) > 0 } as never, json: true });
  await publishRelease(opts(v2, out, { version: '1.1', log }));
  assert.ok(
    lines.some((l) => l.includes('no patch: most of the release changed') && l.includes('"from":"1.0"')),
    lines.join(''),
  );
  assert.not.ok(
    lines.some((l) => l.includes('no patch from 1.0')),
    'the tarball was never opened',
  );
  assert.not.match(readFileSync(path.join(out, 'VERSION'), 'utf8'), /^PATCH /m);
});

function makeSource(name: string): string {
  const dir = path.join(base, name);
  mkdirSync(path.join(dir, 'lib/deep'), { recursive: true });
  writeFileSync(path.join(dir, 'server.js'), 'console.log("hi")\n');
  writeFileSync(path.join(dir, 'lib/deep/b.txt'), 'b\n');
  writeFileSync(path.join(dir, 'lib/a.txt'), 'a\n');
  writeFileSync(path.join(dir, 'run.sh'), '#!/bin/sh\n');
  chmodSync(path.join(dir, 'run.sh'), 0o755);
  return dir;
}

const opts = (dir: string, to: string, more: Partial<PublishOptions> = {}): PublishOptions => ({
  dir,
  name: 'my-app',
  platform: 'gnu-linux',
  version: '1.0',
  key: secret,
  passphraseFile: passFile,
  to,
  log: silentLogger,
  ...more,
});

async function rejects(fn: () => Promise<unknown>, pattern: RegExp): Promise<void> {
  try {
    await fn();
  } catch (error) {
    assert.match((error as Error).message, pattern);
    return;
  }
  assert.unreachable(`expected a rejection matching ${pattern}`);
}

/** 1.0 with a 200 KiB file (in a gzip member of its own) at `out`, and a 1.1 source where only server.js changed. */
async function twoReleases(name: string, out: string): Promise<string> {
  const v1 = makeSource(`${name}-1`);
  // Incompressible, so the tarball is large beside a patch (one as large as half of it is dropped).
  writeFileSync(path.join(v1, 'lib/big.bin'), randomBytes(200 * 1024));
  await publishRelease(opts(v1, out, { version: '1.0' }));
  const v2 = path.join(base, `${name}-2`);
  cpSync(v1, v2, { recursive: true });
  writeFileSync(path.join(v2, 'server.js'), 'console.log("hi from 1.1")\n');
  return v2;
}

const loggedTo = (lines: string[]) =>
  createLogger({ stream: { write: (l: string) => lines.push(l) > 0 } as never, json: true });

test("a patch reads only the members of the old tarball that hold changed files, by the old release's index", async () => {
  const out = path.join(base, 'out-by-index');
  const v2 = await twoReleases('src-by-index', out);
  // Spoil the member that holds only lib/big.bin, which 1.1 does not change: a whole read would fail.
  const index = JSON.parse(readFileSync(path.join(out, 'my-app-gnu-linux-1.0.index'), 'utf8'));
  const big = index.members.find((m: { paths: string[] }) => m.paths.some((p) => p.endsWith('big.bin')));
  assert.equal(big.paths.length, 1, 'a large file has a member of its own');
  const tarball = path.join(out, 'my-app-gnu-linux-1.0.tar.gz');
  const bytes = readFileSync(tarball);
  bytes.fill(0x55, big.at + 20, big.at + big.bytes - 20);
  writeFileSync(tarball, bytes);
  const lines: string[] = [];
  await publishRelease(opts(v2, out, { version: '1.1', log: loggedTo(lines) }));
  assert.ok(
    lines.some((l) => l.includes('patch made') && l.includes('"from":"1.0"')),
    lines.join(''),
  );
  assert.not.ok(
    lines.some((l) => l.includes('reading the whole old tarball')),
    lines.join(''),
  );
  assert.match(
    readFileSync(path.join(out, 'VERSION'), 'utf8'),
    /^PATCH 1\.0 my-app-gnu-linux-1\.1\.from-1\.0\.patch /m,
  );
});

test('an old index that does not serve: the patch is made from the whole old tarball, the same bytes', async () => {
  const good = path.join(base, 'out-index-good');
  const bad = path.join(base, 'out-index-bad');
  const v2 = await twoReleases('src-index-bad', good);
  cpSync(good, bad, { recursive: true });
  const patch = 'my-app-gnu-linux-1.1.from-1.0.patch';
  for (const [spoil, why] of [
    ['{"format":"shipkit-pack-index 1"', /is not JSON/],
    [
      readFileSync(path.join(good, 'my-app-gnu-linux-1.0.index'), 'utf8').replace('server.js"', 'elsewhere.js"'),
      /server\.js/,
    ],
  ] as const) {
    rmSync(path.join(bad, patch), { force: true });
    writeFileSync(path.join(bad, 'my-app-gnu-linux-1.0.index'), spoil);
    const lines: string[] = [];
    await publishRelease(opts(v2, bad, { version: '1.1', log: loggedTo(lines) }));
    const fellBack = lines.find((l) => l.includes('reading the whole old tarball'));
    assert.ok(fellBack, lines.join(''));
    assert.match(fellBack!, why);
    if (!existsSync(path.join(good, patch))) await publishRelease(opts(v2, good, { version: '1.1' }));
    assert.equal(readFileSync(path.join(bad, patch)), readFileSync(path.join(good, patch)));
  }
});

test('the same input gives the same bytes, whatever the mtimes and permissions on disk', async () => {
  const a = makeSource('src-a');
  const b = path.join(base, 'src-b');
  cpSync(a, b, { recursive: true });
  utimesSync(path.join(b, 'server.js'), new Date('2011-01-01'), new Date('2011-01-01'));
  chmodSync(path.join(b, 'lib/a.txt'), 0o600);
  const r1 = await publishRelease(opts(a, path.join(base, 'out1')));
  const r2 = await publishRelease(opts(b, path.join(base, 'out2')));
  const t1 = readFileSync(path.join(base, 'out1', r1.file));
  const t2 = readFileSync(path.join(base, 'out2', r2.file));
  assert.ok(t1.equals(t2), 'identical tarballs');
  assert.is(r1.sha256, createHash('sha256').update(t1).digest('hex'));
  const listing = await runCommand('tar', ['tzvf', path.join(base, 'out1', r1.file)]);
  const lines = listing.stdout.trim().split('\n');
  assert.equal(
    lines.map((l) => l.split(/\s+/).pop()),
    ['lib/', 'lib/a.txt', 'lib/deep/', 'lib/deep/b.txt', 'run.sh', 'server.js'],
  );
  assert.ok(lines.every((l) => !/\broot\b/.test(l) && /^[-d]rw/.test(l)));
  assert.match(
    lines.find((l) => l.endsWith('run.sh'))!,
    /^-rwxr-xr-x/,
  );
  assert.match(
    lines.find((l) => l.endsWith('lib/a.txt'))!,
    /^-rw-r--r--/,
  );
});

test('gpgv verifies the tarball and VERSION; VERSION carries SHA256, SIZE, EXPIRES, RELEASE, APP, PLATFORM', async () => {
  const out = path.join(base, 'out-gpgv');
  const now = new Date('2030-05-01T00:00:00Z');
  const r = await publishRelease(
    opts(makeSource('src-gpgv'), out, {
      version: '1.23.42b',
      codename: 'icecream-soda-popsticle',
      expiresDays: 7,
      now: () => now,
    }),
  );
  assert.is(r.file, 'my-app-gnu-linux-1.23.42b.tar.gz');
  assert.is(r.signer, key.fpr.toLowerCase());
  for (const [sig, file] of [
    [`${r.file}.sig`, r.file],
    ['VERSION.sig', 'VERSION'],
  ]) {
    const v = await runCommand('gpgv', ['--keyring', keyring, path.join(out, sig), path.join(out, file)]);
    assert.is(v.exitCode, 0, v.stderr);
    assert.match(v.stderr, /Good signature/);
  }
  const sigBytes = readFileSync(path.join(out, `${r.file}.sig`));
  assert.not.ok(sigBytes.toString('latin1').includes('BEGIN PGP'), 'a binary signature, as gpg --detach-sign makes');
  const info = parseVersionFile(readFileSync(path.join(out, 'VERSION'), 'utf8'));
  assert.equal(info, {
    version: '1.23.42b',
    file: r.file,
    release: 'icecream-soda-popsticle',
    sha256: r.sha256,
    size: statSync(path.join(out, r.file)).size,
    expires: new Date('2030-05-08T00:00:00Z'),
    app: 'my-app',
    platform: 'gnu-linux',
    seq: 1,
    manifest: {
      file: 'my-app-gnu-linux-1.23.42b.manifest',
      sha256: createHash('sha256')
        .update(readFileSync(path.join(out, 'my-app-gnu-linux-1.23.42b.manifest')))
        .digest('hex'),
    },
  });
  assert.match(readFileSync(path.join(out, 'pubkey.asc'), 'utf8'), /BEGIN PGP PUBLIC KEY BLOCK/);
  assert.not.ok(readFileSync(path.join(out, 'pubkey.asc'), 'utf8').includes('PRIVATE'));
  // Upload order: the payload first, VERSION.sig and VERSION last.
  const t = (f: string) => statSync(path.join(out, f), { bigint: true }).mtimeNs;
  assert.ok(
    t(r.file) <= t(`${r.file}.sig`) && t(`${r.file}.sig`) <= t('VERSION.sig') && t('VERSION.sig') <= t('VERSION'),
  );
  assert.equal(
    readdirSync(out).filter((n) => n.startsWith('.')),
    [],
    'no temp files left',
  );
});

test('prune to --keep, never the current; versions never go down; a changed tarball needs a new version', async () => {
  const out = path.join(base, 'out-prune');
  const src = makeSource('src-prune');
  for (const version of ['1.0', '1.1', '1.2']) {
    writeFileSync(path.join(src, 'version.txt'), version);
    await publishRelease(opts(src, out, { version, keep: 2 }));
  }
  assert.equal(
    readdirSync(out)
      .filter((n) => n.endsWith('.tar.gz'))
      .sort(),
    ['my-app-gnu-linux-1.1.tar.gz', 'my-app-gnu-linux-1.2.tar.gz'],
  );
  assert.not.ok(existsSync(path.join(out, 'my-app-gnu-linux-1.0.tar.gz.sig')));
  assert.equal(
    readdirSync(out).filter((n) => n.includes('-1.0.')),
    [],
    'the manifest, index and patches of 1.0 go with it',
  );
  assert.ok(existsSync(path.join(out, 'my-app-gnu-linux-1.1.index')));
  const one = await publishRelease(opts(src, out, { version: '1.2', keep: 1 }));
  assert.is(one.unchanged, true, 'republishing identical bytes is fine (e.g. to renew EXPIRES)');
  assert.equal(
    readdirSync(out).filter((n) => n.endsWith('.tar.gz')),
    ['my-app-gnu-linux-1.2.tar.gz'],
  );
  await rejects(
    () => publishRelease(opts(src, out, { version: '1.1' })),
    /already offers version 1\.2; refusing to publish the lower 1\.1/,
  );
  writeFileSync(path.join(src, 'version.txt'), 'changed');
  await rejects(
    () => publishRelease(opts(src, out, { version: '1.2' })),
    /exists with other content; publish the change under a new version/,
  );
  assert.match(readFileSync(path.join(out, 'VERSION'), 'utf8'), /^CURRENT 1\.2 /);
});

test('refusals: bad names and versions, a locked key without passphrase, a wrong passphrase, an empty folder, links out', async () => {
  const src = makeSource('src-bad');
  const out = path.join(base, 'out-bad');
  await rejects(() => publishRelease(opts(src, out, { name: '../evil' })), /Invalid app name/);
  await rejects(() => publishRelease(opts(src, out, { platform: 'a/b' })), /Invalid platform/);
  await rejects(() => publishRelease(opts(src, out, { version: '1.0-rc1' })), /hexadecimal/);
  await rejects(
    () => publishRelease(opts(src, out, { passphraseFile: undefined })),
    /protected by a passphrase; pass --passphrase-file/,
  );
  writeFileSync(path.join(base, 'wrong'), 'nope\n');
  await rejects(() => publishRelease(opts(src, out, { passphraseFile: path.join(base, 'wrong') })), /does not unlock/);
  mkdirSync(path.join(base, 'empty'));
  await rejects(() => publishRelease(opts(path.join(base, 'empty'), out)), /is empty; nothing to publish/);
  const { symlinkSync } = await import('node:fs');
  symlinkSync('/etc/passwd', path.join(src, 'passwd'));
  await rejects(() => publishRelease(opts(src, out)), /links to \/etc\/passwd, outside/);
  await rejects(() => publishRelease(opts(path.join(base, 'missing'), out)), /is not a folder/);
  assert.not.ok(existsSync(out), 'nothing written');
});

test('release publish (the real command line): usage errors exit 2 with the message, then it publishes', async () => {
  const src = makeSource('src-main');
  const out = path.join(base, 'out-main');
  const publish = (args: string[]) => runScript('release', ['publish', ...args]);
  const refusals: Array<[string[], RegExp]> = [
    [[src, '--name', 'a b', '--platform', 'x', '--version', '1', '--key', secret, '--to', out], /Invalid app name/],
    [[src, '--name', 'app', '--platform', 'x', '--version', '1', '--to', out], /Missing --key/],
    [
      [src, '--name', 'app', '--platform', 'x', '--version', '1', '--key', secret, '--to', out, '--keep', '0'],
      /--keep must be between 1/,
    ],
  ];
  for (const [args, message] of refusals) {
    const r = await publish(args);
    assert.is(r.exitCode, 2, r.stderr);
    assert.match(r.stderr, message);
  }
  assert.not.ok(existsSync(out), 'nothing written');
  const r = await publish([
    src,
    '--name',
    'app',
    '--platform',
    'x',
    '--version',
    '1.f',
    '--key',
    secret,
    '--passphrase-file',
    passFile,
    '--to',
    out,
    '--json',
  ]);
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(JSON.parse(r.stdout).file, 'app-x-1.f.tar.gz');
});

test('SEQ: one more than the verified VERSION at DEST; an untrusted one needs --seq; VERSION.sig always verifies VERSION', async () => {
  const out = path.join(base, 'out-seq');
  const seqOf = () => parseVersionFile(readFileSync(path.join(out, 'VERSION'), 'utf8')).seq;
  assert.is((await publishRelease(opts(makeSource('src-seq1'), out, { version: '1.0' }))).seq, 1);
  assert.is(seqOf(), 1);
  assert.is((await publishRelease(opts(makeSource('src-seq2'), out, { version: '1.1' }))).seq, 2);
  assert.is(seqOf(), 2);
  const v = await runCommand('gpgv', ['--keyring', keyring, path.join(out, 'VERSION.sig'), path.join(out, 'VERSION')]);
  assert.is(v.exitCode, 0, v.stderr);
  // A VERSION with a forged SEQ (its signature no longer matches): not trusted, nothing written.
  const genuine = readFileSync(path.join(out, 'VERSION'), 'utf8');
  writeFileSync(path.join(out, 'VERSION'), genuine.replace('SEQ 2', 'SEQ 900'));
  await rejects(
    () => publishRelease(opts(makeSource('src-seq3'), out, { version: '1.2' })),
    /VERSION\.sig in .* is not a signature of its VERSION by this release key, so its SEQ is not trusted\. If the release key was rotated .*pass --keys DIR\/keys\.asc.*pass --seq N/,
  );
  assert.not.ok(existsSync(path.join(out, 'my-app-gnu-linux-1.2.tar.gz')));
  assert.is(seqOf(), 900);
  await rejects(
    () => publishRelease(opts(makeSource('src-seq4'), path.join(base, 'out-seq-b'), { version: '1.0', seq: 0 })),
    /--seq 0 is not above SEQ 0/,
  );
  assert.is((await publishRelease(opts(makeSource('src-seq5'), out, { version: '1.2', seq: 901 }))).seq, 901);
  assert.is(seqOf(), 901);
});

test("a file replaced at a folder DEST never keeps its mtime second: nginx's mtime+size ETag changes with each VERSION", async () => {
  const dir = tmpDir();
  const dest = openDestination(path.join(dir, 'updates'), silentLogger);
  const seconds: number[] = [];
  for (const text of ['SEQ 3 ROLLOUT 10\n', 'SEQ 4 ROLLOUT 50\n', 'SEQ 5 ROLLOUT 99\n']) {
    writeFileSync(path.join(dir, 'staged'), text);
    await dest.put(path.join(dir, 'staged'), 'VERSION');
    const st = statSync(path.join(dir, 'updates', 'VERSION'));
    assert.is(st.size, 17, 'the same size each time');
    seconds.push(Math.floor(st.mtimeMs / 1000));
  }
  assert.ok(seconds[0] < seconds[1] && seconds[1] < seconds[2], `mtime seconds ${seconds.join(', ')}`);
});

test('VERSION.sig never shows two contents with one mtime second and size, also when its last step does not wait', async () => {
  const dir = tmpDir();
  const updates = path.join(dir, 'updates');
  const dest = openDestination(updates, silentLogger);
  const seen = new Map<string, string>();
  const look = async (s: string) => {
    if (!s.startsWith('VERSION.sig') || s.endsWith(':temp')) return;
    const st = statSync(path.join(updates, 'VERSION.sig'));
    const etag = `${Math.floor(st.mtimeMs / 1000)}-${st.size}`;
    const content = readFileSync(path.join(updates, 'VERSION.sig'), 'hex');
    assert.ok(
      !seen.has(etag) || seen.get(etag) === content,
      `two contents of VERSION.sig share mtime second and size ${etag}`,
    );
    seen.set(etag, content);
  };
  let previous: PublishedVersion | undefined;
  // Signatures of one size (as one key makes them): only the mtime second can tell them apart.
  for (const n of [1, 2, 3, 4]) {
    const text = `VERSION 1.${n}\nFILE a-${n}.tar.gz\nSEQ ${n}\n`;
    const signature = new Uint8Array(64).fill(n);
    await placeVersionPair(dest, text, signature, previous, look);
    assert.equal(
      [...readFileSync(path.join(updates, 'VERSION.sig'))],
      [...signature],
      'the new signature alone at the end',
    );
    previous = { info: { version: `1.${n}`, file: `a-${n}.tar.gz`, seq: n }, text: Buffer.from(text), signature };
  }
  assert.ok(seen.size >= 7, `every write seen (${seen.size})`);
});

test.run();
