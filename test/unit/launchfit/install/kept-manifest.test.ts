// The manifest a host keeps of each release (lib/launchfit/install/kept-manifest.ts): kept as a
// folder's walk gives it (kept.ts folderTree), then rebuilt with a patch's changes into exactly
// the publisher's manifest of the new folder (release/format/manifest.ts manifestOf, patch-make.ts
// manifestChanges), byte for byte; nothing kept, nothing rebuilt. End to end, with a spoilt copy
// refused by its digest: test/e2e/launchfit/delta.test.ts.
import { chmodSync, cpSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../../../lib/core/log.ts';
import { deployPaths } from '../../../../lib/launchfit/deploy-folder/state.ts';
import { folderTree, manifestTreeDigest } from '../../../../lib/launchfit/install/reuse-kept-release.ts';
import { keepManifest, rebuiltManifest } from '../../../../lib/launchfit/install/kept-manifest.ts';
import { formatManifest, manifestOf } from '../../../../lib/release/format/manifest.ts';
import { manifestChanges } from '../../../../lib/release/publish/patch.ts';
import { tmpDir } from '../../../_helpers/common.ts';

test('a walked folder kept, then rebuilt with the changes, is the publisher manifest of the new one', async () => {
  const base = tmpDir('shipkit-kept-manifest-');
  try {
    const v1 = path.join(base, 'v1');
    mkdirSync(path.join(v1, 'lib/deep'), { recursive: true });
    for (const d of [v1, path.join(v1, 'lib'), path.join(v1, 'lib/deep')]) chmodSync(d, 0o755);
    const files: Array<[string, string, number]> = [
      ['server.cjs', 'console.log(1)\n', 0o644],
      ['lib/deep/data.json', '{"a":1}\n', 0o644],
      ['lib.js', 'gone in v2\n', 0o644],
      ['run.sh', '#!/bin/sh\n', 0o755],
    ];
    for (const [name, text, mode] of files) writeFileSync(path.join(v1, name), text, { mode });
    for (const [name, , mode] of files) chmodSync(path.join(v1, name), mode);
    symlinkSync('lib/deep/data.json', path.join(v1, 'data'));
    const v2 = path.join(base, 'v2');
    cpSync(v1, v2, { recursive: true, verbatimSymlinks: true });
    rmSync(path.join(v2, 'lib.js'));
    writeFileSync(path.join(v2, 'lib/deep/data.json'), '{"a":2}\n');
    writeFileSync(path.join(v2, 'lib/new.js'), 'new\n');
    chmodSync(path.join(v2, 'lib/new.js'), 0o644);

    const walked = await folderTree(v1);
    assert.ok(walked.entries);
    assert.is(
      formatManifest(walked.entries!),
      formatManifest(await manifestOf(v1)),
      'a walk is the publisher manifest',
    );
    assert.is(manifestTreeDigest(walked.entries!), walked.digest);

    const paths = deployPaths(path.join(base, 'host'));
    await keepManifest(paths, 'app-1', walked.entries!, silentLogger);
    const published2 = await manifestOf(v2);
    const changes = manifestChanges(await manifestOf(v1), published2);
    assert.equal(changes.removed, ['lib.js']);
    assert.equal(
      changes.changed.map((e) => e.path),
      ['lib/deep/data.json', 'lib/new.js'],
    );
    const rebuilt = await rebuiltManifest(paths, 'app-1', changes);
    assert.is(rebuilt?.toString('utf8'), formatManifest(published2));
    assert.is(await rebuiltManifest(paths, 'app-0', changes), undefined, 'nothing kept for another release');
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test.run();
