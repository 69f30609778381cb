// The `cache:` key of a repo (lib/config/cache.ts): paths that stay inside the repo's work tree and
// out of .git, one spelling per path, and shipkit.yml's forms (a list, false, true) with FILE:LINE
// on a refusal.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../../lib/core/errors.ts';
import { loadShipkitConfig } from '../../../lib/config/shipkit-yml.ts';
import { cachePathProblem, normaliseCachePath } from '../../../lib/config/cache.ts';
import { tmpDir } from '../../_helpers/common.ts';

const dir = tmpDir();
let counter = 0;
function write(text: string): string {
  const file = path.join(dir, `shipkit-${++counter}.yml`);
  writeFileSync(file, text);
  return file;
}

const REFUSED: Array<[string, RegExp]> = [
  ['../x', /\.\. segment/],
  ['a/../../b', /\.\. segment/],
  ['a/..', /\.\. segment/],
  ['/etc', /not relative/],
  ['//etc', /not relative/],
  ['~/x', /not relative/],
  ['C:/x', /not relative/],
  ['.git', /inside \.git/],
  ['.git/hooks', /inside \.git/],
  ['sub/.GIT/x', /inside \.git/],
  ['', /empty/],
  ['   ', /empty/],
  ['.', /names the repo itself/],
  ['./', /names the repo itself/],
  ['a\\b', /backslash/],
  ['a\nb', /control character/],
];

test('cachePathProblem: paths outside the repo, in .git, empty or odd are refused', () => {
  for (const [raw, why] of REFUSED) {
    const problem = cachePathProblem(raw);
    assert.ok(problem, `${JSON.stringify(raw)} should be refused`);
    assert.match(problem!, why, JSON.stringify(raw));
  }
  for (const raw of [
    '.cache',
    'a/b',
    './.parcel-cache/',
    'with space',
    'st*r',
    '..x',
    'x..',
    '.gitignored',
    'node_modules/.cache',
  ]) {
    assert.is(cachePathProblem(raw), undefined, JSON.stringify(raw));
  }
});

test('normaliseCachePath: one spelling per path', () => {
  assert.is(normaliseCachePath('./a//b/'), 'a/b');
  assert.is(normaliseCachePath('.cache/'), '.cache');
  assert.is(normaliseCachePath('a/./b'), 'a/b');
});

async function refusedAt(yaml: string, line: number, key: string, message: RegExp) {
  const file = write(yaml);
  try {
    await loadShipkitConfig(file);
  } catch (error) {
    assert.instance(error, ConfigError);
    const text = (error as Error).message;
    assert.ok(text.startsWith(`${file}:${line}: ${key}: `), `expected line ${line} ${key}, got ${text}`);
    assert.match(text, message);
    return;
  }
  assert.unreachable(`accepted: ${yaml}`);
}

test('shipkit.yml cache: refused with FILE:LINE and the key', async () => {
  const repo = (cache: string) => `repos:\n  octo/site:\n    branch: main\n    cache:\n${cache}`;
  await refusedAt(
    repo('      - .cache\n      - ../x\n'),
    6,
    'repos.octo/site.cache[1]',
    /"\.\.\/x" has a \.\. segment/,
  );
  await refusedAt(repo('      - /etc\n'), 5, 'repos.octo/site.cache[0]', /"\/etc" is not relative/);
  await refusedAt(repo('      - a/../../b\n'), 5, 'repos.octo/site.cache[0]', /\.\. segment/);
  await refusedAt(repo('      - .git/hooks\n'), 5, 'repos.octo/site.cache[0]', /inside \.git/);
  await refusedAt(repo('      - ""\n'), 5, 'repos.octo/site.cache[0]', /is empty/);
  await refusedAt(repo('      - 3\n'), 5, 'repos.octo/site.cache[0]', /must be a path/);
  await refusedAt('repos:\n  octo/site:\n    cache: .cache\n', 3, 'repos.octo/site.cache', /list of paths .* or false/);
});

test('shipkit.yml cache: a list (normalised, deduplicated), false, true or absent', async () => {
  const load = async (cache: string) =>
    (await loadShipkitConfig(write(`repos:\n  octo/site:\n${cache}`))).repos.get('octo/site')!.cache;
  assert.equal(await load('    cache: [.cache, ./.cache/, "with space", "st*r", node_modules]\n'), [
    '.cache',
    'with space',
    'st*r',
    'node_modules',
  ]);
  assert.is(await load('    cache: false\n'), false);
  assert.equal(await load('    cache: true\n'), []);
  assert.equal(await load('    branch: main\n'), []);
});

test.run();
