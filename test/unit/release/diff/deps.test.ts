// release diff's dependencies (lib/release/diff/deps.ts): package-lock.json v1, v2 and v3 read
// to one map of install paths, and two of them compared, table-driven.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compareDependencies, lockedPackages, packageNameOf } from '../../../../lib/release/diff/deps.ts';

const v3 = (packages: Record<string, unknown>) => ({
  lockfileVersion: 3,
  packages: { '': { name: 'app' }, ...packages },
});
const v1 = (dependencies: Record<string, unknown>) => ({ lockfileVersion: 1, dependencies });

test('packageNameOf: the name after the last node_modules/, scopes kept', () => {
  const cases: Array<[string, string]> = [
    ['node_modules/lodash', 'lodash'],
    ['node_modules/@scope/pkg', '@scope/pkg'],
    ['node_modules/a/node_modules/@s/b', '@s/b'],
    ['packages/web', 'packages/web'],
  ];
  for (const [key, name] of cases) assert.is(packageNameOf(key), name, key);
});

test('lockedPackages: v3 packages by install path, the project and workspaces left out, links named', () => {
  const found = lockedPackages(
    v3({
      'node_modules/a': { version: '1.0.0', integrity: 'sha512-a' },
      'node_modules/a/node_modules/b': { version: '2.0.0' },
      'packages/web': { version: '0.1.0' },
      'node_modules/web': { link: true, resolved: 'packages/web' },
      'node_modules/broken': 'not an object',
    }),
  );
  assert.equal(
    [...found.values()].map((p) => [p.path, p.name, p.version, p.integrity]),
    [
      ['node_modules/a', 'a', '1.0.0', 'sha512-a'],
      ['node_modules/a/node_modules/b', 'b', '2.0.0', null],
      ['node_modules/web', 'web', 'link:packages/web', null],
    ],
  );
});

test('lockedPackages: a v1 tree is flattened to the paths a v2 lock would name; v2 reads packages', () => {
  const found = lockedPackages(
    v1({ a: { version: '1.0.0', dependencies: { b: { version: '2.0.0' } } }, '@s/c': { version: '3.0.0' } }),
  );
  assert.equal([...found.keys()].sort(), ['node_modules/@s/c', 'node_modules/a', 'node_modules/a/node_modules/b']);
  const both = lockedPackages({
    lockfileVersion: 2,
    packages: { 'node_modules/x': { version: '1.0.0' } },
    dependencies: { y: { version: '9.9.9' } },
  });
  assert.equal([...both.keys()], ['node_modules/x']);
  assert.throws(() => lockedPackages({ lockfileVersion: 3 }), /neither "packages" nor "dependencies"/);
  assert.throws(() => lockedPackages(null), /neither/);
});

test('lockedPackages: a v1 tree nested past any real depth is cut, not followed forever', () => {
  let tree: Record<string, unknown> = { leaf: { version: '1.0.0' } };
  for (let i = 0; i < 200; i++) tree = { [`p${i}`]: { version: '1.0.0', dependencies: tree } };
  assert.ok(lockedPackages(v1(tree)).size < 100);
});

test('compareDependencies: added, removed, version changed, same version with another integrity', () => {
  const cases: Array<[string, Record<string, unknown>, Record<string, unknown>, unknown]> = [
    [
      'added and removed',
      v3({ 'node_modules/lodash': { version: '4.17.20' } }),
      v3({ 'node_modules/left-pad': { version: '1.3.0' } }),
      { added: [['left-pad', '1.3.0']], removed: [['lodash', '4.17.20']], changed: [] },
    ],
    [
      'a version changed',
      v3({ 'node_modules/express': { version: '4.18.2' } }),
      v3({ 'node_modules/express': { version: '4.19.0' } }),
      { added: [], removed: [], changed: [['express', '4.18.2', '4.19.0', false]] },
    ],
    [
      'republished under the same version',
      v3({ 'node_modules/x': { version: '1.0.0', integrity: 'sha512-old' } }),
      v3({ 'node_modules/x': { version: '1.0.0', integrity: 'sha512-new' } }),
      { added: [], removed: [], changed: [['x', '1.0.0', '1.0.0', true]] },
    ],
    [
      'an integrity that one side lacks is not a change',
      v3({ 'node_modules/x': { version: '1.0.0' } }),
      v3({ 'node_modules/x': { version: '1.0.0', integrity: 'sha512-new' } }),
      { added: [], removed: [], changed: [] },
    ],
    [
      'a v1 lock against a v3 lock',
      v1({ a: { version: '1.0.0' }, b: { version: '1.0.0' } }),
      v3({ 'node_modules/a': { version: '1.1.0' }, 'node_modules/b': { version: '1.0.0' } }),
      { added: [], removed: [], changed: [['a', '1.0.0', '1.1.0', false]] },
    ],
    [
      'the same package nested in another place',
      v3({ 'node_modules/b': { version: '1.0.0' } }),
      v3({ 'node_modules/b': { version: '1.0.0' }, 'node_modules/a/node_modules/b': { version: '2.0.0' } }),
      { added: [['b', '2.0.0']], removed: [], changed: [] },
    ],
  ];
  for (const [label, before, after, expected] of cases) {
    const d = compareDependencies(lockedPackages(before), lockedPackages(after));
    assert.equal(
      {
        added: d.added.map((p) => [p.name, p.version]),
        removed: d.removed.map((p) => [p.name, p.version]),
        changed: d.changed.map((p) => [p.name, p.from, p.to, p.integrityChanged]),
      },
      expected,
      label,
    );
  }
});

test('compareDependencies: each list sorted by install path', () => {
  const d = compareDependencies(
    new Map(),
    lockedPackages(v3({ 'node_modules/z': { version: '1' }, 'node_modules/a': { version: '1' } })),
  );
  assert.equal(
    d.added.map((p) => p.path),
    ['node_modules/a', 'node_modules/z'],
  );
});

test.run();
