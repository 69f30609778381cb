// What `release publish` leaves out (lib/release/publish/pack-filter.ts): .git by default, names at
// any depth or paths from DIR, globs within a name or across folders, --include putting back.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { UsageError } from '../../../../lib/core/errors.ts';
import { packFilter } from '../../../../lib/release/publish/pack-filter.ts';

test('which entries each selection leaves out', () => {
  const cases: Array<[string, Parameters<typeof packFilter>[0], string[], string[]]> = [
    ['default: .git only, at any depth', {}, ['.git', 'sub/.git', '.gitignore', 'lib/.gitkeep'], ['.git', 'sub/.git']],
    [
      'a name',
      { exclude: ['node_modules'] },
      ['node_modules', 'a/node_modules', 'node_modules.txt'],
      ['a/node_modules', 'node_modules'],
    ],
    ['a glob within a name', { exclude: ['*.map'] }, ['app.js.map', 'lib/x.map', 'map'], ['app.js.map', 'lib/x.map']],
    ['a path from DIR', { exclude: ['build/cache'] }, ['build/cache', 'src/build/cache', 'cache'], ['build/cache']],
    ['** across folders', { exclude: ['docs/**/*.md'] }, ['docs/a/b.md', 'docs/x.md', 'a/docs/b.md'], ['docs/a/b.md']],
    ['--include puts .git back', { include: ['.git'] }, ['.git', 'sub/.git'], []],
  ];
  for (const [name, selection, paths, leftOut] of cases) {
    const filter = packFilter(selection);
    const skipped = paths.filter((p) => filter.skip(p));
    assert.equal(skipped.sort(), [...leftOut].sort(), name);
    assert.equal(
      filter.leftOut(),
      [...leftOut].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))),
      name,
    );
  }
});

test('a pattern naming nothing inside DIR is a usage error', () => {
  for (const bad of ['', '/', '../x', 'a/../../b', '/etc'])
    assert.throws(
      () => packFilter({ exclude: [bad] }),
      (e: unknown) => e instanceof UsageError,
      bad,
    );
  assert.throws(() => packFilter({ include: ['..'] }), /--include "\.\." names nothing inside DIR/);
});

test.run();
