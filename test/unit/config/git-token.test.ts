// A repo's `token:` and `token_user:` (lib/config/git-token.ts): absent, the defaults, and every
// refused shape named with FILE:LINE.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../../lib/core/errors.ts';
import { parseYamlText } from '../../../lib/core/yaml-config.ts';
import { parseGitToken } from '../../../lib/config/git-token.ts';

const docOf = (lines: string[]) =>
  parseYamlText(['repos:', '  octo/site:', ...lines.map((l) => `    ${l}`), ''].join('\n'), '/etc/shipkit/shipkit.yml');
const KEY = ['repos', 'octo/site'];

test('parseGitToken: absent, defaults, and refused shapes name FILE:LINE', () => {
  assert.is(parseGitToken(docOf(['url: https://github.com/octo/site.git']), KEY), undefined);
  assert.equal(parseGitToken(docOf(['token: env:SITE_GIT_TOKEN']), KEY), {
    token: 'env:SITE_GIT_TOKEN',
    user: 'x-access-token',
    keyPath: [...KEY, 'token'],
  });
  assert.is(
    parseGitToken(docOf(['token: file:tok', 'token_user: gitlab+deploy-token-7']), KEY)?.user,
    'gitlab+deploy-token-7',
  );
  const refused: Array<[string[], RegExp]> = [
    [['token_user: bot'], /shipkit\.yml:3: .*token_user: is set but token: is not/],
    [['token: "env:"'], /shipkit\.yml:3: .*token: is empty/],
    [['token: ""'], /shipkit\.yml:3: .*token: is empty/],
    [['token: env:T', 'token_user: "a b"'], /shipkit\.yml:4: .*token_user: must be a user name/],
  ];
  for (const [lines, message] of refused)
    assert.throws(() => parseGitToken(docOf(lines), KEY), message, lines.join(' '));
});

test.run();
