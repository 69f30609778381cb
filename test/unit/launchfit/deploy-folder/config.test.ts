// launchify.yml as `launchfit run` reads it at every check and start: a file whose text is
// unchanged is not parsed again (config.ts loadLaunchYaml), so the reads must still see every edit,
// even one of the same length made within the same second, and a caller that changes what it got
// must not change what the next caller gets.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadLaunchConfig, readReleaseAppDefaults } from '../../../../lib/launchfit/deploy-folder/config.ts';
import { tmpDir } from '../../../_helpers/common.ts';

const yml = (exec: string) => `app:\n  exec: ${exec}\n  env:\n    A: one\nupdates:\n  server: http://127.0.0.1:9/\n`;

test('an edit of the same length right after a read is seen by the next read', async () => {
  const dir = tmpDir('shipkit-lf-config-');
  writeFileSync(path.join(dir, 'launchify.yml'), yml('node a.js'));
  assert.is((await loadLaunchConfig(dir)).app.exec, 'node a.js');
  writeFileSync(path.join(dir, 'launchify.yml'), yml('node b.js'));
  assert.is((await loadLaunchConfig(dir)).app.exec, 'node b.js');
});

test("a caller changing the config it got does not change the next caller's", async () => {
  const dir = tmpDir('shipkit-lf-config-');
  writeFileSync(path.join(dir, 'launchify.yml'), yml('node a.js'));
  const first = await loadLaunchConfig(dir);
  (first.app.env as Record<string, string>).A = 'changed';
  assert.is((await loadLaunchConfig(dir)).app.env?.A, 'one');
});

test("a release's launchify.yml: edits seen, a missing file is {}, an invalid one still an error", async () => {
  const release = path.join(tmpDir('shipkit-lf-config-'), 'releases', 'my-app-1');
  mkdirSync(release, { recursive: true });
  assert.equal(await readReleaseAppDefaults(release), {});
  writeFileSync(path.join(release, 'launchify.yml'), 'app:\n  healthy_after: 2\n');
  assert.is((await readReleaseAppDefaults(release)).healthyAfterSec, 2);
  writeFileSync(path.join(release, 'launchify.yml'), 'app:\n  healthy_after: 3\n');
  assert.is((await readReleaseAppDefaults(release)).healthyAfterSec, 3);
  writeFileSync(path.join(release, 'launchify.yml'), 'app: [\n');
  let failed = false;
  try {
    await readReleaseAppDefaults(release);
  } catch {
    failed = true;
  }
  assert.ok(failed, 'an invalid launchify.yml is an error every time it is read');
});

test.run();
