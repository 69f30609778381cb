// linkProblem follows links on a real disk, the way the kernel will.
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MAX_LINK_HOPS, linkProblem } from '../../../../lib/launchfit/install/extract.ts';
import { tmpDir } from '../../../_helpers/common.ts';

/** A release root with `links` (path → target) and a file `f` and folder `d/e`. */
function makeRoot(links: Array<[string, string]>): string {
  const root = path.join(tmpDir('shipkit-links-'), 'root');
  mkdirSync(path.join(root, 'd/e'), { recursive: true });
  writeFileSync(path.join(root, 'f'), 'x');
  for (const [link, target] of links) {
    mkdirSync(path.dirname(path.join(root, link)), { recursive: true });
    symlinkSync(target, path.join(root, link));
  }
  return root;
}

const cases: Array<[string, Array<[string, string]>, string, RegExp | undefined]> = [
  ['a plain relative link', [['d/e/l', '../../f']], 'd/e/l', undefined],
  ['a link to the root itself', [['d/l', '..']], 'd/l', undefined],
  [
    'a chain inside',
    [
      ['d/e/up', '../..'],
      ['x', 'd/e/up/f'],
    ],
    'x',
    undefined,
  ],
  ['a dangling link inside', [['x', 'not/yet/there']], 'x', undefined],
  ['a link climbing out by its text', [['d/l', '../..']], 'd/l', /^links outside the release$/],
  [
    '`..` after a link climbs from its target',
    [
      ['d/e/up', '../..'],
      ['x', 'd/e/up/..'],
    ],
    'x',
    /^links outside the release \(through "d\/e\/up"\)$/,
  ],
  ['out and back in', [['x', '../root/f']], 'x', /^links outside the release$/],
  ['an absolute target', [['x', '/etc']], 'x', /absolute path/],
  [
    'an absolute target further down the chain',
    [
      ['y', '/etc'],
      ['x', 'y'],
    ],
    'x',
    /through "y" to an absolute path/,
  ],
  ['a self loop', [['x', 'x']], 'x', /symlink loop/],
  [
    'a two-link loop',
    [
      ['x', 'y'],
      ['y', 'x'],
    ],
    'x',
    /symlink loop/,
  ],
  [
    'a missing step then `..` through a link',
    [
      ['d/up', '../..'],
      ['x', 'nope/../d/up/..'],
    ],
    'x',
    /outside the release \(through "d\/up"\)/,
  ],
];
for (const [label, links, which, problem] of cases) {
  test(label, async () => {
    const root = makeRoot(links);
    const why = await linkProblem(root, path.join(root, which));
    if (problem) assert.match(why ?? '(no problem)', problem);
    else assert.is(why, undefined);
  });
}

test(`a chain of ${MAX_LINK_HOPS} links is fine, one more is refused`, async () => {
  const chain = (n: number): Array<[string, string]> =>
    Array.from({ length: n }, (_, i) => [`l${i}`, i === n - 1 ? 'f' : `l${i + 1}`]);
  let root = makeRoot(chain(MAX_LINK_HOPS));
  assert.is(await linkProblem(root, path.join(root, 'l0')), undefined);
  root = makeRoot(chain(MAX_LINK_HOPS + 1));
  assert.match((await linkProblem(root, path.join(root, 'l0')))!, /chain of more than 40 links/);
});

test.run();
