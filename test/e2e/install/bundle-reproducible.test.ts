// The one file is built reproducibly: two `tools/bundle.ts shipkit` runs of the same tree write the
// same bytes (dist/shipkit.mjs and the installed bins' dist/shipkit.cjs), whichever of its units
// finished building first, as shipkit's own releases are (docs/release.md, "Reproducible").
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT, runCommand, tmpDir } from '../../_helpers/common.ts';

test('two builds of the one file from the same tree are byte for byte the same', async () => {
  const built = await Promise.all(
    ['a', 'b'].map(async () => {
      const outdir = tmpDir('shipkit-bundle-twice-');
      const r = await runCommand(
        process.execPath,
        [
          '--import',
          path.join(ROOT, 'node_modules/tsx/dist/loader.mjs'),
          'tools/bundle.ts',
          'shipkit',
          '--outdir',
          outdir,
        ],
        { cwd: ROOT, timeoutMs: 180_000 },
      );
      assert.is(r.exitCode, 0, r.stderr);
      return outdir;
    }),
  );
  for (const file of ['shipkit.mjs', 'shipkit.cjs']) {
    const [a, b] = built.map((dir) => readFileSync(path.join(dir, file)));
    assert.ok(a.length > 0, file);
    const at = a.findIndex((byte, i) => byte !== b[i]);
    assert.ok(a.equals(b), `${file}: ${a.length} and ${b.length} bytes, first differing at byte ${at}`);
  }
});

test.run();
