// @deno
// build with caches (docs/design.md `cache:`): cache: paths survive the pull step's git clean (a path
// with a space and one with `*`, matched literally), npm's cache is shared between a repo's
// builds and the install line says what it saved (counted against a local registry's tarball
// requests), `build --no-cache` and `cache: false` start clean, and paths outside the repo are
// refused before anything is cloned.
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { makeSite, type Site } from '../../_helpers/build.ts';
import {
  lockDependencies,
  makePackage,
  startNpmRegistry,
  type NpmRegistry,
  type PackedPackage,
} from '../../_helpers/npm-registry.ts';
import { runCommand, tmpDir, rootBuildUser } from '../../_helpers/common.ts';

// Appends a line to a file in each folder: a kept folder has one line more per build.
const BUILD_SH = `for d in .cache "with space" "st*r" stXr other; do mkdir -p "$d"; echo built >> "$d/f"; done\n`;
const KEPT = ['.cache', 'with space', 'st*r'];

const registries: NpmRegistry[] = [];
let packages: PackedPackage[] = [];
const packBase = tmpDir('shipkit-cache-pkgs-');

async function registry(): Promise<NpmRegistry> {
  if (!packages.length)
    packages = [
      await makePackage(packBase, 'alpha'),
      await makePackage(packBase, 'beta'),
      await makePackage(packBase, 'gamma'),
      await makePackage(packBase, 'delta'),
    ];
  const r = await startNpmRegistry(packages);
  registries.push(r);
  return r;
}

const lines = (site: Site, dir: string) =>
  readFileSync(path.join(site.repoDir, dir, 'f'), 'utf8')
    .split('\n')
    .filter(Boolean).length;
const npmEnv = (r: NpmRegistry) => ({
  npm_config_registry: r.url,
  npm_config_cache: undefined,
  NPM_CONFIG_CACHE: undefined,
});

async function cachedSite(repoYaml: string) {
  const reg = await registry();
  const deps = await lockDependencies(tmpDir('shipkit-cache-lock-'), packages.slice(0, 3), reg);
  const site = await makeSite({ ...deps, 'build.sh': BUILD_SH });
  site.writeConfig(`steps: [pull, install, compile]\ncompile: sh build.sh\n${repoYaml}`);
  const build = (...args: string[]) => site.run('build', ['octo/site', ...args], npmEnv(reg));
  return { reg, site, build };
}

function installLine(log: string): string {
  const all = log.match(/--- step install (ok|skipped)[^\n]*/g) ?? [];
  return all[all.length - 1] ?? '(no install line)';
}

test('cache: paths survive the rebuild git clean would empty; others go; the log names them with sizes', async () => {
  const { site, build } = await cachedSite('cache: [.cache, "with space", "st*r"]');
  let r = await build();
  assert.is(r.exitCode, 0, r.stderr + site.logText().slice(-2000));
  assert.match(
    site.logText(),
    /cache: kept \.cache \(not there yet\), with space \(not there yet\), st\*r \(not there yet\)/,
  );
  r = await build();
  assert.is(r.exitCode, 0, r.stderr);
  for (const dir of KEPT) assert.is(lines(site, dir), 2, `${dir} kept`);
  for (const dir of ['stXr', 'other'])
    assert.is(lines(site, dir), 1, `${dir} removed by git clean (the * is not a glob)`);
  assert.match(site.logText(), /cache: kept \.cache \(6 B\), with space \(6 B\), st\*r \(6 B\)/);
  assert.match(
    installLine(site.logText()),
    /skipped: package-lock\.json and node v[\d.]+ unchanged since the install of .*, node_modules kept/,
  );
});

test('npm cache shared between builds: miss on the first install, hit after a lockfile change, partial for a new package', async () => {
  const { reg, site, build } = await cachedSite('');
  let r = await build();
  assert.is(r.exitCode, 0, r.stderr + site.logText().slice(-2000));
  assert.match(
    installLine(site.logText()),
    /ok \([\d.]+ s\): npm ci [\d.]+ s, cache miss: 0 of 3 packages from the npm cache, 3 fetched$/,
  );
  assert.is(reg.tarballRequests(), 3);
  const npmCache = path.join(site.data, 'state/octo__site/npm-cache/_cacache');
  assert.ok(existsSync(npmCache), "the repo's npm cache is DATA/state/REPO/npm-cache, root build or not");

  // The lockfile changes (gamma dropped): npm ci runs again, every tarball from the cache.
  await site.commit(await lockDependencies(tmpDir('shipkit-cache-lock-'), packages.slice(0, 2), reg), 'drop gamma');
  r = await build();
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(
    installLine(site.logText()),
    /ok \([\d.]+ s\): npm ci [\d.]+ s, cache hit: 2 of 2 packages from the npm cache$/,
  );
  assert.match(r.stderr, /install: ok in [\d.]+ s \(npm ci [\d.]+ s, cache hit: 2 of 2/);
  assert.is(reg.tarballRequests(), 3, 'no tarball fetched from the registry');
  assert.ok(existsSync(path.join(site.repoDir, 'node_modules/beta/index.js')));
  assert.not.ok(existsSync(path.join(site.repoDir, 'node_modules/gamma')));

  // gamma back and delta new: three from the cache, one fetched.
  await site.commit(await lockDependencies(tmpDir('shipkit-cache-lock-'), packages, reg), 'add delta');
  r = await build();
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(
    installLine(site.logText()),
    /npm ci [\d.]+ s, partial cache hit: 3 of 4 packages from the npm cache, 1 fetched$/,
  );
  assert.is(reg.tarballRequests(), 4);
});

function cacheEntries(site: Site): number {
  const index = path.join(site.data, 'state/octo__site/npm-cache/_cacache/content-v2');
  let n = 0;
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) e.isDirectory() ? walk(path.join(dir, e.name)) : n++;
  };
  if (existsSync(index)) walk(index);
  return n;
}

test('build --no-cache: kept paths and node_modules removed, fresh npm cache (removed after), the log says clean', async () => {
  const { reg, site, build } = await cachedSite('cache: [.cache, "with space", "st*r"]');
  let r = await build();
  assert.is(r.exitCode, 0, r.stderr);
  const shared = cacheEntries(site);
  assert.ok(shared >= 3);
  writeFileSync(path.join(site.repoDir, 'node_modules/alpha/marker'), 'old install');
  r = await build('--no-cache');
  assert.is(r.exitCode, 0, r.stderr + site.logText().slice(-2000));
  const log = site.logText();
  assert.match(
    log,
    /cache: clean build \(--no-cache\): node_modules, downloads, \.cache, with space and st\*r removed with the other untracked files/,
  );
  assert.match(
    installLine(log),
    /ok \([\d.]+ s\): npm ci [\d.]+ s, clean: a fresh npm cache, every package fetched$/,
    'installed although the lockfile is unchanged',
  );
  assert.match(log, /\$ npm ci --no-audit --no-fund --no-update-notifier\n/, 'no --prefer-offline with a fresh cache');
  for (const dir of [...KEPT, 'stXr']) assert.is(lines(site, dir), 1, `${dir} started clean`);
  assert.not.ok(existsSync(path.join(site.repoDir, 'node_modules/alpha/marker')), 'node_modules reinstalled');
  assert.is(reg.tarballRequests(), 6, 'every tarball fetched again');
  assert.is(cacheEntries(site), shared, 'the shared npm cache is left as it was');
  assert.equal(
    readdirSync(path.join(site.data, 'state/octo__site')).filter((e) => e.startsWith('npm-cache-clean-')),
    [],
    'the fresh cache is removed',
  );

  // The next normal build keeps and reuses again.
  r = await build();
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(lines(site, '.cache'), 2);
  assert.match(installLine(site.logText()), /skipped: .*node_modules kept/);
});

test('build --no-cache without the pull step: only the kept paths are removed (literally: st*r, not stXr)', async () => {
  const { site, build } = await cachedSite('cache: [.cache, "with space", "st*r"]');
  let r = await build();
  assert.is(r.exitCode, 0, r.stderr);
  mkdirSync(path.join(site.repoDir, 'downloads'), { recursive: true });
  writeFileSync(path.join(site.repoDir, 'downloads/x'), 'old');
  r = await build('--no-cache', '--steps', 'install');
  assert.is(r.exitCode, 0, r.stderr + site.logText().slice(-2000));
  for (const dir of [...KEPT, 'downloads']) assert.not.ok(existsSync(path.join(site.repoDir, dir)), `${dir} removed`);
  for (const dir of ['stXr', 'other']) assert.is(lines(site, dir), 1, `${dir} is not a cache path and stays`);
  assert.ok(existsSync(path.join(site.repoDir, 'node_modules/alpha/index.js')));
  assert.match(
    site.logText(),
    /cache: clean build \(--no-cache\): node_modules, downloads, \.cache, with space and st\*r removed\n/,
  );
});

test('cache: false: every build starts clean and installs with a fresh npm cache', async () => {
  const { reg, site, build } = await cachedSite('cache: false');
  for (let i = 1; i <= 2; i++) {
    const r = await build();
    assert.is(r.exitCode, 0, r.stderr + site.logText().slice(-2000));
    assert.is(lines(site, '.cache'), 1, `build ${i}: .cache not kept`);
    assert.match(installLine(site.logText()), /clean: a fresh npm cache/);
  }
  assert.match(site.logText(), /cache: clean build \(cache: false\): node_modules and downloads removed/);
  assert.is(reg.tarballRequests(), 6);
  assert.not.ok(existsSync(path.join(site.data, 'state/octo__site/npm-cache')), 'no shared npm cache is made');
});

test('cache: paths outside the repo or in .git: exit 2 with FILE:LINE, nothing cloned', async () => {
  const site = await makeSite({ 'README.md': 'x\n' });
  for (const bad of ['../x', '/etc', 'a/../../b', '.git/hooks']) {
    site.writeConfig(`cache:\n  - .cache\n  - ${JSON.stringify(bad)}`);
    const r = await site.run('build', ['octo/site']);
    assert.is(r.exitCode, 2, `${bad}: ${r.stderr}`);
    const line =
      readFileSync(site.config, 'utf8')
        .split('\n')
        .findIndex((l) => l.includes(JSON.stringify(bad))) + 1;
    assert.match(r.stderr, `${site.config}:${line}: repos.octo/site.cache[1]: ${JSON.stringify(bad)}`);
    assert.match(r.stderr, /(\.\. segment|not relative|inside \.git)/);
    assert.not.ok(existsSync(path.join(site.data, 'repos')), `${bad}: nothing cloned`);
    assert.not.ok(existsSync(path.join(site.data, 'logs')), `${bad}: no job started`);
  }
});

test("user: builds: the shared npm cache and a --no-cache build's fresh one belong to the build user", async () => {
  const as = await rootBuildUser();
  if (!as) return;
  const { user, uid } = as;
  const { reg, site, build } = await cachedSite(`user: ${user}\ncache: [.cache]`);
  chmodSync(site.base, 0o755);
  // git refuses a repository owned by someone else ("dubious ownership"), as a forge's would be.
  assert.is((await runCommand('chown', ['-R', user, path.dirname(site.bare)])).exitCode, 0);
  let r = await build();
  assert.is(r.exitCode, 0, r.stderr + site.logText().slice(-2000));
  const cache = path.join(site.data, 'state/octo__site/npm-cache');
  assert.is(statSync(path.join(cache, '_cacache')).uid, uid, 'npm wrote the shared cache as the user');
  r = await build('--no-cache');
  assert.is(r.exitCode, 0, r.stderr + site.logText().slice(-2000));
  assert.match(installLine(site.logText()), /clean: a fresh npm cache/);
  assert.is(statSync(path.join(site.repoDir, 'node_modules/alpha/index.js')).uid, uid);
  assert.equal(
    readdirSync(path.join(site.data, 'state/octo__site')).filter((e) => e.startsWith('npm-cache-clean-')),
    [],
  );
  assert.is(reg.tarballRequests(), 6);
  assert.is(lines(site, '.cache'), 1);
});

test.after(async () => {
  await Promise.all(registries.map((r) => r.close()));
});

test.run();
