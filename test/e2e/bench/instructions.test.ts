// npm run bench:instructions (bench/instructions.ts) as a child process, where it must refuse:
// without valgrind or GNU time on the PATH it names the Debian packages and starts nothing; a bad
// --targets is refused the same way. (Its counts take a minute or two under valgrind, which CI
// does not install: they are run by hand, docs/benchmarks.md.)
import { mkdirSync, readdirSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT, runCommand, tmpDir } from '../../_helpers/common.ts';

const BENCH = [
  '--import',
  path.join(ROOT, 'node_modules/tsx/dist/loader.mjs'),
  path.join(ROOT, 'bench/instructions.ts'),
];

test('without valgrind and GNU time on the PATH bench:instructions refuses to start and names the packages', async () => {
  const work = tmpDir('shipkit-instructions-path-');
  const bin = path.join(work, 'bin');
  mkdirSync(bin);
  symlinkSync(process.execPath, path.join(bin, 'node'));
  const tmp = path.join(work, 'tmp');
  mkdirSync(tmp);
  const r = await runCommand(process.execPath, BENCH, { env: { PATH: bin, TMPDIR: tmp }, timeoutMs: 60_000 });
  assert.is(r.exitCode, 2, r.stdout + r.stderr);
  assert.match(
    r.stderr,
    'bench:instructions: cannot run without valgrind (apt-get install valgrind), callgrind_annotate (apt-get install valgrind), time (apt-get install time); nothing was started.',
  );
  assert.is(r.stdout, '');
  // tsx keeps its own cache there; the bench would make shipkit-bench-* folders (and a bundle).
  assert.equal(
    readdirSync(tmp).filter((name) => name.startsWith('shipkit-')),
    [],
    'no folder made, no bundle built',
  );
});

test('a bad --targets: exit 2 with the flag named, before anything starts', async () => {
  for (const value of ['0', 'many', '2.5']) {
    const r = await runCommand(process.execPath, [...BENCH, '--targets', value], { timeoutMs: 60_000 });
    assert.is(r.exitCode, 2, r.stdout + r.stderr);
    assert.match(r.stderr, 'bench:instructions: --targets takes a whole number, 1 or more; nothing was started.');
  }
});

test.run();
