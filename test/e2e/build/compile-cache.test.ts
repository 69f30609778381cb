// @deno
// The compile step's npm uses the repo's own cache (DATA/state/REPO/npm-cache), as the install
// step does, never the build user's shared ~/.npm (one repo must not poison another's).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { makeSite } from '../../_helpers/build.ts';

const PACKAGE = JSON.stringify({
  name: 'site',
  private: true,
  scripts: { build: 'npm config get cache > npm-cache.txt' },
});

test("npm run build and a compile: command see the repo's own npm cache", async () => {
  const site = await makeSite({ 'package.json': PACKAGE });
  site.writeConfig('steps: [pull, compile]');
  const env = { npm_config_cache: undefined, NPM_CONFIG_CACHE: undefined };
  const r = await site.run('build', ['octo/site'], env);
  assert.is(r.exitCode, 0, r.stderr);
  const own = path.join(site.data, 'state', 'octo__site', 'npm-cache');
  assert.is(readFileSync(path.join(site.repoDir, 'npm-cache.txt'), 'utf8').trim(), own);
  site.writeConfig('steps: [pull, compile]\ncompile: npm config get cache > configured.txt');
  const again = await site.run('build', ['octo/site'], env);
  assert.is(again.exitCode, 0, again.stderr);
  assert.is(readFileSync(path.join(site.repoDir, 'configured.txt'), 'utf8').trim(), own);
});

test.run();
