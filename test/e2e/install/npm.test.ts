// @each-node
// Install with npm (README "Install"): `npm pack` (prepack builds dist/shipkit.mjs), then
// `npm install -g --prefix P` and `npm install --prefix DIR` of the tarball with an empty npm
// cache, npm_config_offline=true and npm_config_yes=false: the package has no dependencies, so
// nothing is fetched and nothing prompts. Every bin then runs from an unrelated folder with a
// PATH of the install's bin folder plus node, git and the shell: a litpro build through
// hook-server and a launchfit deploy of a signed release.
// The commands it runs are shown in README.md (Install), docs/install.md (npm) and docs/build.md (cron, systemd timer).
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT, runCommand, tmpDir } from '../../_helpers/common.ts';
import { assertStatusPage, buildLitproThroughHookServer, nodeGitAndShellOnly } from '../../_helpers/install.ts';
import { currentOf, makeWorld } from '../../fixtures/launchfit/world.ts';

const bins = Object.keys(
  JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).bin as Record<string, string>,
);
const scripts = readdirSync(path.join(ROOT, 'scripts'))
  .filter((f) => f.endsWith('.ts'))
  .map((f) => f.slice(0, -3));
const work = tmpDir('shipkit-npm-');
const offline = {
  npm_config_offline: 'true',
  npm_config_yes: 'false',
  npm_config_cache: path.join(work, 'empty-cache'),
  npm_config_audit: 'false',
  npm_config_fund: 'false',
  npm_config_update_notifier: 'false',
};
let tarball = '';
let shell = '';
const prefix = path.join(work, 'global');
const local = path.join(work, 'opt-shipkit');

/** `npm pack --json` prints the prepack script's output first; the JSON report is the rest. */
function packReport(stdout: string): { filename: string; files: Array<{ path: string }> } {
  return JSON.parse(stdout.slice(stdout.search(/^\[/m)))[0];
}

test('npm pack holds what runs and the docs, no tests, benches, sources or CI files', async () => {
  const r = await runCommand('npm', ['pack', '--json', '--pack-destination', work], { timeoutMs: 300_000 });
  assert.is(r.exitCode, 0, r.stderr);
  const report = packReport(r.stdout);
  tarball = path.join(work, report.filename);
  const files = report.files.map((f) => f.path);
  for (const wanted of [
    'bin/shipkit.cjs',
    'dist/shipkit.mjs',
    'dist/shipkit.cjs',
    'README.md',
    'LICENSE',
    'package.json',
    'hooks/post-receive',
    'templates/hook-server.service',
    'shipkit.example.yml',
    'launchify.example.yml',
    'manifest.example.txt',
  ]) {
    assert.ok(files.includes(wanted), `${wanted} is in the package`);
  }
  assert.ok(
    files.some((f) => f.startsWith('docs/')),
    'docs/ is in the package',
  );
  const unwanted = files.filter((f) =>
    /^(test|bench|\.ci|tools|scripts|lib|node_modules)\/|\.test\.ts$|^tsconfig|package-lock/.test(f),
  );
  assert.equal(unwanted, []);
  shell = await nodeGitAndShellOnly();
});

/** The generic names: on nobody's PATH, `shipkit NAME` only (as the .deb has them). */
const GENERIC = ['build', 'downloads', 'upload', 'logs', 'release'];

test('the npm package puts the names the .deb puts on the PATH, and no generic one', () => {
  const deb = /const ON_PATH = \[([^\]]*)\]/.exec(readFileSync(path.join(ROOT, 'tools/deb.ts'), 'utf8'));
  assert.ok(deb, 'tools/deb.ts names its ON_PATH programs');
  assert.equal(
    [...bins].sort(),
    deb![1]
      .split(',')
      .map((s) => s.trim().replace(/^'|'$/g, ''))
      .sort(),
  );
  for (const name of GENERIC) assert.not.ok(bins.includes(name), `${name} is not a bin`);
});

test('npm install -g --prefix: no network, no prompt, an empty cache; only the distinctive names land on the PATH', async () => {
  const r = await runCommand('npm', ['install', '-g', '--prefix', prefix, tarball], {
    env: offline,
    cwd: work,
    timeoutMs: 180_000,
  });
  assert.is(r.exitCode, 0, r.stderr);
  const onPath = readdirSync(path.join(prefix, 'bin'));
  assert.equal(onPath.sort(), ['hook-server', 'launchfit', 'server-update', 'shipkit', 'slave-activate']);
});

test('a generic name is `shipkit NAME`: `build` alone is not found, `shipkit build --help` and `shipkit logs --help` answer', async () => {
  const PATH = `${path.join(prefix, 'bin')}:${shell}`;
  const cwd = tmpDir('shipkit-elsewhere-');
  const bare = await runCommand('sh', ['-c', 'command -v build logs release upload downloads'], { cwd, env: { PATH } });
  assert.is(bare.stdout, '', 'no generic name resolves on the PATH');
  for (const name of GENERIC) {
    const r = await runCommand('shipkit', [name, '--help'], { cwd, env: { PATH, ...offline } });
    assert.is(r.exitCode, 0, `shipkit ${name}: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`Usage:\\s+${name}`));
  }
});

test('npm install --prefix DIR (a local install, as in /opt/shipkit)', async () => {
  mkdirSync(local);
  const r = await runCommand('npm', ['install', '--prefix', local, tarball], {
    env: offline,
    cwd: work,
    timeoutMs: 180_000,
  });
  assert.is(r.exitCode, 0, r.stderr);
  const other = tmpDir('shipkit-elsewhere-');
  const h = await runCommand(path.join(local, 'node_modules', '.bin', 'hook-server'), ['--help'], {
    cwd: other,
    env: { PATH: shell },
  });
  assert.is(h.exitCode, 0, h.stderr);
  assert.match(h.stdout, /Usage: hook-server/);
  // What templates/shipkit-build@.service and cron.example run.
  const binDir = readdirSync(path.join(local, 'node_modules', '.bin'));
  for (const name of GENERIC) assert.not.ok(binDir.includes(name), `node_modules/.bin/${name}`);
  const b = await runCommand(path.join(local, 'node_modules', '.bin', 'shipkit'), ['build', '--help'], {
    cwd: other,
    env: { PATH: shell },
  });
  assert.is(b.exitCode, 0, b.stderr);
  assert.match(b.stdout, /^Usage: build REPO/);
});

test('`shipkit` lists every script; every bin answers --help from an unrelated folder', async () => {
  const PATH = `${path.join(prefix, 'bin')}:${shell}`;
  const cwd = tmpDir('shipkit-elsewhere-');
  const list = await runCommand('shipkit', [], { cwd, env: { PATH, ...offline } });
  assert.is(list.exitCode, 0, list.stderr);
  for (const name of scripts.filter((s) => s !== 'shipkit')) assert.match(list.stdout, new RegExp(`^  ${name} `, 'm'));
  for (const name of bins) {
    const r = await runCommand(name, ['--help'], { cwd, env: { PATH, ...offline } });
    assert.is(r.exitCode, 0, `${name}: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`Usage:\\s+${name}`));
    assert.is(r.stderr, '', name);
  }
  const sub = await runCommand('shipkit', ['release', 'publish', '--help'], { cwd, env: { PATH } });
  assert.is(sub.exitCode, 0, sub.stderr);
  assert.match(sub.stdout, /release publish DIR/);
});

test('no config: the message names the installed shipkit.example.yml, and `shipkit example-config` prints it', async () => {
  const PATH = `${path.join(prefix, 'bin')}:${shell}`;
  const cwd = tmpDir('shipkit-elsewhere-');
  const example = path.join(prefix, 'lib', 'node_modules', 'shipkit', 'shipkit.example.yml');
  const r = await runCommand('shipkit', ['logs', 'octo/site'], { cwd, env: { PATH, ...offline } });
  assert.is(r.exitCode, 2, r.stderr);
  assert.match(
    r.stderr,
    `(every key is explained in ${example}; \`shipkit example-config > shipkit.yml\` writes a copy to start from)`,
  );
  const printed = await runCommand('shipkit', ['example-config'], { cwd, env: { PATH, ...offline } });
  assert.is(printed.exitCode, 0, printed.stderr);
  assert.is(printed.stdout, readFileSync(example, 'utf8'));
  assert.is(printed.stdout, readFileSync(path.join(ROOT, 'shipkit.example.yml'), 'utf8'));
  assert.equal(readdirSync(cwd), [], 'nothing written');
});

test('the installed hook-server builds a litpro repo from a signed push', async () => {
  const PATH = `${path.join(prefix, 'bin')}:${shell}`;
  const { job, log, html, pages } = await buildLitproThroughHookServer([path.join(prefix, 'bin', 'hook-server')], {
    cwd: tmpDir(),
    path: PATH,
  });
  assert.is(job.state, 'succeeded', log);
  assert.match(html, /<h1>Hello from litpro<\/h1>/);
  assertStatusPage(pages, job.id);
});

test('the installed launchfit deploys a signed release', async () => {
  const w = await makeWorld();
  try {
    await w.publish('1.0');
    const dir = path.join(w.base, 'deploy-npm');
    mkdirSync(dir);
    const PATH = `${path.join(prefix, 'bin')}:${shell}`;
    const r = await runCommand('launchfit', [w.server.url, '--key', w.key.fpr], {
      cwd: dir,
      env: { PATH, HOME: w.base },
    });
    assert.is(r.exitCode, 0, r.stderr);
    assert.is(currentOf(dir), 'releases/my-app-gnu-linux-1.0');
  } finally {
    w.server.close();
  }
});

test.run();
