// @each-node
// Install as one file (README "Install"): dist/shipkit.mjs copied alone into an empty folder
// under /tmp (no node_modules anywhere up the tree), with a PATH that has only node, git and the shell.
// It is multi-call — `node shipkit.mjs SCRIPT`, or a link named after a script — and
// hook-server starts its jobs through the same file, litpro included. The heavy libraries, kept
// in the file as units compiled on first use (tools/multicall.ts), run from it too.
// The commands it runs are shown in README.md (Install) and docs/install.md (one file, from a checkout).
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT, runCommand, tmpDir } from '../../_helpers/common.ts';
import { assertStatusPage, buildLitproThroughHookServer, nodeGitAndShellOnly } from '../../_helpers/install.ts';
import { exportPublic, makePublisher } from '../../fixtures/launchfit/gpg.ts';
import { startS3rver } from '../../fixtures/s3rver.ts';
import { APP_SOURCE, currentOf } from '../../fixtures/launchfit/world.ts';

const scripts = readdirSync(path.join(ROOT, 'scripts'))
  .filter((f) => f.endsWith('.ts') && f !== 'shipkit.ts')
  .map((f) => f.slice(0, -3));
const folder = tmpDir('shipkit-onefile-');
const bundle = path.join(folder, 'shipkit.mjs');
let PATH = '';

test('npm run bundle writes shipkit.mjs; it is copied alone', async () => {
  // Built into a folder of its own (--outdir; dist/ is the default): npm pack's prepack in
  // install-npm writes dist/shipkit.mjs too, and a copy taken beside it could be half-written.
  const built = tmpDir('shipkit-onefile-out-');
  const r = await runCommand(
    process.execPath,
    ['--import', path.join(ROOT, 'node_modules/tsx/dist/loader.mjs'), 'tools/bundle.ts', 'shipkit', '--outdir', built],
    { timeoutMs: 180_000 },
  );
  assert.is(r.exitCode, 0, r.stderr);
  copyFileSync(path.join(built, 'shipkit.mjs'), bundle);
  assert.equal(readdirSync(folder), ['shipkit.mjs']);
  for (let dir = folder; dir !== '/'; dir = path.dirname(dir))
    assert.not.ok(existsSync(path.join(dir, 'node_modules')), dir);
  PATH = await nodeGitAndShellOnly();
});

test('shipkit.mjs with no arguments lists every script; an unknown one is exit 2', async () => {
  const r = await runCommand('node', [bundle], { cwd: folder, env: { PATH } });
  assert.is(r.exitCode, 0, r.stderr);
  for (const name of scripts) assert.match(r.stdout, new RegExp(`^  ${name} `, 'm'));
  const bad = await runCommand('node', [bundle, 'nope'], { cwd: folder, env: { PATH } });
  assert.is(bad.exitCode, 2);
  assert.match(bad.stderr, /Unknown script "nope"\. Run `shipkit` to list the scripts\./);
});

for (const name of scripts) {
  test(`node shipkit.mjs ${name} --help, and a link named ${name}`, async () => {
    const r = await runCommand('node', [bundle, name, '--help'], { cwd: folder, env: { PATH } });
    assert.is(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`Usage:\\s+${name}`));
    const link = path.join(folder, name);
    if (!existsSync(link)) symlinkSync('shipkit.mjs', link);
    const viaLink = await runCommand(link, ['--version'], { cwd: '/', env: { PATH } });
    assert.is(viaLink.exitCode, 0, viaLink.stderr);
    assert.match(viaLink.stdout, new RegExp(`^${name} \\d`));
  });
}

test('on a Node without process.getBuiltinModule (20.0 to 20.15), the entry answers and a script runs', async () => {
  // Such a node, as near as this one can stand for it: the function taken away before the one file runs.
  const work = tmpDir('shipkit-older-node-');
  const older = path.join(work, 'older.cjs');
  writeFileSync(older, 'delete process.getBuiltinModule;\n');
  for (const args of [['--version'], ['--help'], ['fleet', '--help']]) {
    const r = await runCommand('node', ['--require', older, bundle, ...args], { cwd: folder, env: { PATH } });
    assert.is(r.exitCode, 0, r.stderr);
    assert.is(r.stderr, '');
    assert.match(r.stdout, args[0] === '--version' ? /^shipkit \d/ : /^Usage:/);
  }
  // A script's unit, compiled from its text (no cache), takes its built-ins through node:module's require.
  writeFileSync(path.join(work, 'targets'), 'http://127.0.0.1:9/\n');
  const r = await runCommand(
    'node',
    ['--require', older, bundle, 'server-update', 'site', '--list', 'targets', '--insecure', '--dry-run'],
    { cwd: work, env: { PATH, SHIPKIT_CODE_CACHE: '0' } },
  );
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(r.stdout, 'would send GET http://127.0.0.1:9/?repo=site (UNSIGNED)\n');
});

test('no config: the one file, with no shipkit.example.yml beside it, offers `shipkit example-config`, which prints the example it carries', async () => {
  const cwd = tmpDir('shipkit-onefile-cwd-');
  const r = await runCommand('node', [bundle, 'logs', 'octo/site'], { cwd, env: { PATH } });
  assert.is(r.exitCode, 2, r.stderr);
  const offered = existsSync('/usr/share/doc/shipkit/examples/shipkit.example.yml')
    ? 'every key is explained in /usr/share/doc/shipkit/examples/shipkit.example.yml; `shipkit example-config > shipkit.yml` writes a copy to start from'
    : '`shipkit example-config > shipkit.yml` writes a commented example with every key to start from';
  assert.match(r.stderr, `create ./shipkit.yml (${offered}).`);
  const printed = await runCommand('node', [bundle, 'example-config'], { cwd, env: { PATH } });
  assert.is(printed.exitCode, 0, printed.stderr);
  assert.is(printed.stdout, readFileSync(path.join(ROOT, 'shipkit.example.yml'), 'utf8'));
  assert.equal(readdirSync(cwd), [], 'nothing written');
});

test("a script's second start takes its code from the user's cache: node:zlib is not even loaded", async () => {
  const work = tmpDir('shipkit-onefile-cache-');
  const cache = path.join(work, 'xdg');
  writeFileSync(path.join(work, 'targets'), 'http://127.0.0.1:9/\n');
  writeFileSync(path.join(work, 'secret'), 'a-secret-of-twenty-chars\n', { mode: 0o600 });
  // Preloaded: writes the built-in modules Node loaded, at exit, to a file of its own.
  const preload = path.join(work, 'loaded.cjs');
  writeFileSync(
    preload,
    "process.on('exit', () => require('node:fs').writeFileSync(process.env.LOADED_TO, process.moduleLoadList.join('\\n')));\n",
  );
  const loaded = async (run: string) => {
    const out = path.join(work, `loaded-${run}`);
    const r = await runCommand(
      'node',
      [
        '--require',
        preload,
        bundle,
        'server-update',
        'site',
        '--list',
        'targets',
        '--secret-file',
        'secret',
        '--dry-run',
      ],
      { cwd: work, env: { PATH, XDG_CACHE_HOME: cache, LOADED_TO: out } },
    );
    assert.is(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, /would send GET http:\/\/127\.0\.0\.1:9\/\?repo=site/);
    return readFileSync(out, 'utf8').split('\n');
  };
  assert.ok((await loaded('first')).includes('NativeModule zlib'), 'the first start decompresses the unit');
  const kept = readdirSync(path.join(cache, 'shipkit', 'code'));
  assert.ok(
    kept.some((f) => /^[0-9a-f]{32}\.js$/.test(f)),
    kept.join(' '),
  );
  assert.ok(
    kept.some((f) => /^[0-9a-f]{32}-v[\d.]+-\w+\.v8$/.test(f)),
    kept.join(' '),
  );
  const second = await loaded('second');
  assert.ok(second.includes('NativeModule node:vm') || second.includes('NativeModule vm'), 'the unit was compiled');
  assert.not.ok(second.includes('NativeModule zlib'), 'nor read nor decompressed');
});

test('a signed push to the bundled hook-server builds a litpro repo end to end (jobs run through the same file)', async () => {
  const { job, log, html, pages } = await buildLitproThroughHookServer(['node', bundle, 'hook-server'], {
    cwd: folder,
    path: PATH,
  });
  assert.is(job.state, 'succeeded', log);
  assert.match(log, /compile: ok in [\d.]+ s \(litpro\)|--- step compile/);
  assert.match(html, /<h1>Hello from litpro<\/h1>/);
  assertStatusPage(pages, job.id);
});

test('release publish to s3:// and launchfit deploy from the bucket, both from the one file (tar, OpenPGP, the S3 client)', async () => {
  const s3rver = await startS3rver('releases');
  const { endpoint } = s3rver;
  try {
    const base = tmpDir();
    const { g, key, secret } = await makePublisher(base, 'pw');
    const pub = await exportPublic(g, key.fpr, path.join(base, 'pub.asc'));
    const app = path.join(base, 'app');
    mkdirSync(app);
    copyFileSync(APP_SOURCE, path.join(app, 'server.cjs'));
    const env = {
      PATH,
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      AWS_REGION: 'us-east-1',
      AWS_ENDPOINT_URL_S3: endpoint,
      AWS_CONFIG_FILE: '/nonexistent',
      AWS_SHARED_CREDENTIALS_FILE: '/nonexistent',
      AWS_PROFILE: undefined,
    };
    const publish = await runCommand(
      'node',
      [
        bundle,
        'release',
        'publish',
        app,
        '--name',
        'my-app',
        '--platform',
        'gnu-linux',
        '--version',
        '3.0',
        '--key',
        secret,
        '--passphrase-file',
        path.join(base, 'pass'),
        '--to',
        's3://releases/app-updates',
      ],
      { cwd: folder, env, timeoutMs: 120_000 },
    );
    assert.is(publish.exitCode, 0, publish.stderr);
    const version = await fetch(`${endpoint}/releases/app-updates/VERSION`);
    assert.is(version.status, 200);
    assert.match(await version.text(), /^CURRENT 3\.0 my-app-gnu-linux-3\.0\.tar\.gz$/m);
    const deploy = path.join(base, 'deploy');
    mkdirSync(deploy);
    const d = await runCommand(
      'node',
      [bundle, 'launchfit', 'deploy', `${endpoint}/releases/app-updates/`, '--dir', deploy, '--keyfile', pub],
      { cwd: folder, env: { PATH } },
    );
    assert.is(d.exitCode, 0, d.stderr);
    assert.is(currentOf(deploy), 'releases/my-app-gnu-linux-3.0');
  } finally {
    await s3rver.close();
  }
});

test.run();
