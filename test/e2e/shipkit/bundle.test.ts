// `npm run bundle` makes one self-contained dist/NAME.mjs per script: copied to a folder with no
// node_modules anywhere above it, each still runs with plain `node`.
import { copyFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { makeBareRepo, ROOT, runCommand, tmpDir } from '../../_helpers/common.ts';

const scripts = readdirSync(path.join(ROOT, 'scripts'))
  .filter((f) => f.endsWith('.ts'))
  .map((f) => f.slice(0, -3));
const outside = tmpDir('shipkit-bundle-'); // under /tmp: no node_modules to fall back on

test('npm run bundle writes NAME.mjs for every script', async () => {
  // Into a folder of its own (tools/bundle.ts --outdir; dist/ is the default): npm pack's prepack
  // in install-npm writes dist/ too, and a test running beside it would copy a half-written file.
  const built = tmpDir('shipkit-bundle-out-');
  const r = await runCommand(
    process.execPath,
    ['--import', path.join(ROOT, 'node_modules/tsx/dist/loader.mjs'), 'tools/bundle.ts', '--outdir', built],
    { timeoutMs: 180_000 },
  );
  assert.is(r.exitCode, 0, r.stderr);
  for (const name of scripts) {
    assert.match(r.stdout, new RegExp(`${name}\\.mjs`));
    copyFileSync(path.join(built, `${name}.mjs`), path.join(outside, `${name}.mjs`));
  }
});

for (const name of scripts) {
  test(`dist/${name}.mjs runs alone with plain node`, async () => {
    const r = await runCommand(process.execPath, [path.join(outside, `${name}.mjs`), '--help'], { cwd: outside });
    assert.is(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, /Usage/i);
  });
}

test('the bundled slave-activate clones (zx and git work from the single file)', async () => {
  const base = tmpDir();
  const repo = await makeBareRepo(base, 'site');
  const root = path.join(tmpDir(), 'repos');
  const r = await runCommand(
    process.execPath,
    [path.join(outside, 'slave-activate.mjs'), 'site', '--root', root, '--base', base],
    { cwd: outside },
  );
  assert.is(r.exitCode, 0, r.stderr);
  assert.ok(r.stdout.includes(repo.first));
});

test.run();
