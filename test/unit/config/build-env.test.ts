// lib/config/build-env.ts: the names a repo's env: may not use (PATH and HOME among them;
// build-env.test.ts in e2e runs PATH, SHIPKIT_*, GIT_SSH_COMMAND and bad names through `build`).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildVariableProblem } from '../../../lib/config/build-env.ts';

test("HOME, USER, npm's cache and git's config variables are shipkit's: refused", () => {
  for (const name of [
    'HOME',
    'USER',
    'LOGNAME',
    'npm_config_cache',
    'GIT_CONFIG_COUNT',
    'GIT_CONFIG_KEY_0',
    'GIT_CONFIG_VALUE_3',
    'GIT_ASKPASS',
    'CI',
  ]) {
    assert.match(buildVariableProblem(name) ?? '', /cannot be overridden/, name);
  }
});

test('ordinary names pass; names that are no variable are refused', () => {
  for (const name of ['NODE_ENV', 'API_KEY', '_X', 'HOMEPAGE_URL', 'GIT_AUTHOR_NAME'])
    assert.is(buildVariableProblem(name), undefined, name);
  for (const name of ['', '1A', 'A-B', 'A B', 'A=B'])
    assert.match(buildVariableProblem(name) ?? '', /not a valid variable name/, JSON.stringify(name));
});

test.run();
