// lib/pipeline/cache.ts: the git clean patterns (anchored, escaped; checked against a real git),
// what a run keeps, and how npm cache use is counted from a lockfile and described. The `cache:`
// key itself is test/unit/config/cache.test.ts.
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  cacheContentPaths,
  cleanExcludePattern,
  countCachedPackages,
  describeCacheUse,
  keptPaths,
  planCache,
  registryIntegrities,
} from '../../../lib/pipeline/cache.ts';
import { git, runCommand, tmpDir } from '../../_helpers/common.ts';

const dir = tmpDir();
test('planCache and keptPaths: the defaults first, --no-cache and cache: false start clean', () => {
  assert.equal(keptPaths(['.cache', 'node_modules']), ['node_modules', 'downloads', '.cache']);
  assert.equal(planCache(['.cache']), { keep: ['node_modules', 'downloads', '.cache'] });
  assert.equal(planCache(['.cache'], { noCache: true }), { keep: [], clean: '--no-cache' });
  assert.equal(planCache(false), { keep: [], clean: 'cache: false' });
});

test('cleanExcludePattern: anchored and escaped; a real git clean keeps exactly those paths', async () => {
  assert.is(cleanExcludePattern('.cache'), '/.cache');
  assert.is(cleanExcludePattern('st*r'), '/st\\*r');
  assert.is(cleanExcludePattern('a[1]?'), '/a\\[1\\]\\?');
  assert.is(cleanExcludePattern('!x #y'), '/\\!x \\#y');
  assert.is(cleanExcludePattern('trailing '), '/trailing\\ ');
  const work = path.join(dir, 'clean');
  mkdirSync(work, { recursive: true });
  await git(work, 'init', '-q');
  const files = [
    'with space/f',
    'st*r/f',
    'stXr/f',
    'a/b/f',
    'a/c',
    'cache',
    'sub/cache',
    'trailing /f',
    'trailing/f',
    'x.cache',
  ];
  for (const f of files) {
    mkdirSync(path.join(work, path.dirname(f)), { recursive: true });
    writeFileSync(path.join(work, f), 'x');
  }
  const keep = ['with space', 'st*r', 'a/b', 'cache', 'trailing '];
  const r = await runCommand('git', ['clean', '-ffdx', '-n', ...keep.flatMap((p) => ['-e', cleanExcludePattern(p)])], {
    cwd: work,
  });
  assert.is(r.exitCode, 0, r.stderr);
  const removed = r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => l.replace(/^Would remove /, ''))
    .sort();
  assert.equal(removed, ['a/c', 'stXr/', 'sub/', 'trailing/', 'x.cache']);
});

const integrity = (text: string) => `sha512-${createHash('sha512').update(text).digest('base64')}`;

test('registryIntegrities: registry packages only (no links, file: or git deps), lockfile v3 and v1', () => {
  const v3 = {
    packages: {
      '': { integrity: 'sha512-root' },
      'node_modules/a': { integrity: integrity('a') },
      'node_modules/b': { integrity: integrity('b'), resolved: 'https://registry.npmjs.org/b/-/b-1.0.0.tgz' },
      'node_modules/local': { link: true, resolved: 'vendor/local' },
      'node_modules/tar': { integrity: integrity('t'), resolved: 'file:vendor/t.tgz' },
      'node_modules/g': { resolved: 'git+ssh://git@github.com/o/g.git#abc' },
    },
  };
  assert.equal(registryIntegrities(v3), [integrity('a'), integrity('b')]);
  const v1 = {
    dependencies: {
      a: { integrity: integrity('a'), dependencies: { c: { integrity: integrity('c') } } },
      l: { resolved: 'file:x' },
    },
  };
  assert.equal(registryIntegrities(v1), [integrity('a'), integrity('c')]);
});

test("countCachedPackages: tarballs found where npm's cache (cacache content-v2) keeps them", async () => {
  const cache = path.join(dir, 'npm-cache');
  const [content] = cacheContentPaths(cache, integrity('a'));
  const hex = createHash('sha512').update('a').digest('hex');
  assert.is(content, path.join(cache, '_cacache/content-v2/sha512', hex.slice(0, 2), hex.slice(2, 4), hex.slice(4)));
  assert.equal(cacheContentPaths(cache, 'nonsense'), []);
  mkdirSync(path.dirname(content), { recursive: true });
  writeFileSync(content, 'a');
  const lockfile = path.join(dir, 'package-lock.json');
  writeFileSync(
    lockfile,
    JSON.stringify({
      packages: {
        '': {},
        'node_modules/a': { integrity: integrity('a') },
        'node_modules/b': { integrity: integrity('b') },
      },
    }),
  );
  assert.equal(await countCachedPackages(lockfile, cache), { total: 2, cached: 1 });
  assert.is(await countCachedPackages(path.join(dir, 'missing.json'), cache), undefined);
});

test('describeCacheUse: hit, miss, partial, fresh, not counted', () => {
  assert.is(describeCacheUse({ total: 3, cached: 3 }), 'cache hit: 3 of 3 packages from the npm cache');
  assert.is(describeCacheUse({ total: 3, cached: 0 }), 'cache miss: 0 of 3 packages from the npm cache, 3 fetched');
  assert.is(
    describeCacheUse({ total: 3, cached: 2 }),
    'partial cache hit: 2 of 3 packages from the npm cache, 1 fetched',
  );
  assert.is(describeCacheUse({ total: 0, cached: 0 }), 'no registry packages in the lockfile');
  assert.match(describeCacheUse(undefined, { fresh: true }), /^clean: a fresh npm cache/);
  assert.match(describeCacheUse(undefined), /not counted/);
});

test.run();
