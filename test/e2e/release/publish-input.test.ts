// `release publish` as a child process, on what an operator hands it in the first hour: an
// http(s) URL as DEST (refused, nothing written), a folder with .git and node_modules (.git left
// out by default, --exclude and --include, what was packed said, tarballs still reproducible),
// and a patch too large to keep (the log tells one story: no "patch made" for it).
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runCommand, runScript, tmpDir } from '../../_helpers/common.ts';
import { makePublisher } from '../../fixtures/launchfit/gpg.ts';

let base: string;
let secret: string;
let passFile: string;

test.before(async () => {
  base = tmpDir();
  ({ secret, passFile } = await makePublisher(base, 'pw'));
});

const publish = (dir: string, version: string, to: string, extra: string[] = [], cwd = base) =>
  runScript(
    'release',
    [
      'publish',
      dir,
      '--name',
      'app',
      '--platform',
      'gnu-linux',
      '--version',
      version,
      '--key',
      secret,
      '--passphrase-file',
      passFile,
      '--to',
      to,
      ...extra,
    ],
    { cwd },
  );

function makeSource(name: string, files: Record<string, string | Buffer>): string {
  const dir = path.join(base, name);
  for (const [file, body] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    writeFileSync(path.join(dir, file), body);
  }
  return dir;
}

const listTarball = async (file: string) => (await runCommand('tar', ['-tzf', file])).stdout.trim().split('\n').sort();

test('an http(s) URL as DEST exits 2, writes nothing, and says what DEST is', async () => {
  const src = makeSource('src-url', { 'index.html': 'hi\n' });
  const cwd = tmpDir('shipkit-cwd-');
  for (const url of ['http://updates.example.com/updates/', 'https://updates.example.com/app']) {
    const r = await publish(src, '1.0', url, [], cwd);
    assert.is(r.exitCode, 2, r.stderr);
    assert.match(r.stderr, /is a URL, not a DEST: DEST is a folder, user@host:path or s3:\/\/bucket\/prefix/);
    assert.match(r.stderr, /http\(s\) URLs are what launchfit reads from/);
    assert.equal(readdirSync(cwd), [], 'no folder named http: or https:');
  }
});

test('.git is left out by default, --exclude leaves out more, --include puts .git back; each said', async () => {
  const src = makeSource('src-git', {
    'index.html': '<h1>hi</h1>\n',
    '.git/HEAD': 'ref: refs/heads/main\n',
    '.git/config': '[core]\n',
    'node_modules/left-pad/index.js': 'module.exports = 1;\n',
    'lib/.gitkeep': '',
    'lib/app.js.map': '{}\n',
  });
  const plain = path.join(base, 'dest-plain');
  const r = await publish(src, '1.0', plain);
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /^Packed 4 files \(\d+ bytes\) from .*src-git; left out: \.git\.\n/);
  const tarball = path.join(plain, 'app-gnu-linux-1.0.tar.gz');
  const entries = await listTarball(tarball);
  assert.not.ok(
    entries.some((e) => e.split('/').includes('.git')),
    entries.join(' '),
  );
  assert.ok(entries.includes('lib/.gitkeep'), 'a name that only starts like .git stays');
  assert.ok(entries.includes('node_modules/left-pad/index.js'));
  const manifest = readFileSync(path.join(plain, 'app-gnu-linux-1.0.manifest'), 'utf8');
  assert.not.match(manifest, /"\.git/, 'the manifest lists what the tarball holds');
  // Reproducible: the same folder packs to the same bytes, whoever runs it again.
  const again = path.join(base, 'dest-again');
  assert.is((await publish(src, '1.0', again)).exitCode, 0);
  assert.equal(readFileSync(path.join(again, 'app-gnu-linux-1.0.tar.gz')), readFileSync(tarball));

  const less = path.join(base, 'dest-less');
  const ex = await publish(src, '1.0', less, ['--exclude', 'node_modules', '--exclude', '*.map', '--json']);
  assert.is(ex.exitCode, 0, ex.stderr);
  const packed = JSON.parse(ex.stdout).packed;
  assert.equal(packed.leftOut, ['.git', 'lib/app.js.map', 'node_modules']);
  assert.is(packed.files, 2);
  assert.equal(await listTarball(path.join(less, 'app-gnu-linux-1.0.tar.gz')), ['index.html', 'lib/', 'lib/.gitkeep']);

  const all = path.join(base, 'dest-all');
  const inc = await publish(src, '1.0', all, ['--include', '.git']);
  assert.is(inc.exitCode, 0, inc.stderr);
  assert.match(inc.stdout, /^Packed 6 files .*; nothing left out\./);
  assert.ok((await listTarball(path.join(all, 'app-gnu-linux-1.0.tar.gz'))).includes('.git/HEAD'));

  const bad = await publish(src, '1.0', path.join(base, 'dest-bad'), ['--exclude', '../x']);
  assert.is(bad.exitCode, 2, bad.stderr);
  assert.match(bad.stderr, /--exclude "\.\.\/x" names nothing inside DIR/);
  assert.not.ok(existsSync(path.join(base, 'dest-bad')));
});

test('a patch too large to keep is not logged as made', async () => {
  const zeros = Buffer.alloc(300 * 1024);
  const dest = path.join(base, 'dest-patch');
  const v1 = makeSource('src-p1', { 'zeros.bin': zeros, 'random.bin': randomBytes(24 * 1024) });
  assert.is((await publish(v1, '1.0', dest)).exitCode, 0);
  const v2 = makeSource('src-p2', { 'zeros.bin': zeros, 'random.bin': randomBytes(24 * 1024) });
  const r = await publish(v2, '1.1', dest);
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stderr, /no patch: it would be more than half the tarball/);
  assert.not.match(r.stderr, /patch made/, r.stderr);
  assert.not.match(readFileSync(path.join(dest, 'VERSION'), 'utf8'), /^PATCH /m);
});

test.run();
