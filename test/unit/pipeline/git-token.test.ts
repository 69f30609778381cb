// lib/pipeline/git-token.ts: which remotes may carry a token, the environment git gets (and what
// it must not hold), and how a refused token or a redirect is explained.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../../lib/core/errors.ts';
import { parseYamlText } from '../../../lib/core/yaml-config.ts';
import { StepFailure } from '../../../lib/pipeline/context.ts';
import { explainGitTokenFailure, prepareGitToken, tokenOrigin } from '../../../lib/pipeline/git-token.ts';
import { parseGitToken } from '../../../lib/config/git-token.ts';

const docOf = (lines: string[]) =>
  parseYamlText(['repos:', '  octo/site:', ...lines.map((l) => `    ${l}`), ''].join('\n'), '/etc/shipkit/shipkit.yml');
const KEY = ['repos', 'octo/site'];

test('tokenOrigin: https anywhere and http on loopback give the origin; ssh, plain http elsewhere, paths and credentials do not', () => {
  const ok: Array<[string, string]> = [
    ['https://github.com/octo/site.git', 'https://github.com'],
    ['https://git.example.com:8443/a/b/c.git', 'https://git.example.com:8443'],
    ['https://github.com:443/octo/site.git', 'https://github.com'],
    ['http://127.0.0.1:3000/octo/site.git', 'http://127.0.0.1:3000'],
    ['http://localhost/octo/site.git', 'http://localhost'],
    ['http://[::1]:3000/octo/site.git', 'http://[::1]:3000'],
  ];
  for (const [url, origin] of ok) assert.equal(tokenOrigin(url), { origin }, url);
  const refused: Array<[string, RegExp]> = [
    ['git@github.com:octo/site.git', /reached over ssh.*use ssh_key:/],
    ['ssh://git@github.com/octo/site.git', /reached over ssh/],
    ['http://git.example.com/octo/site.git', /plain http:\/\/.*use its https:\/\/ address/],
    ['http://127.0.0.1.example.com/site.git', /plain http:\/\//],
    ['file:///srv/git/site.git', /not an https:\/\/ address/],
    ['/srv/git/site.git', /not an https:\/\/ address/],
    ['https://user:secret@github.com/octo/site.git', /carries a user name or password/],
  ];
  for (const [url, problem] of refused) {
    const result = tokenOrigin(url);
    assert.ok('problem' in result, url);
    assert.match((result as { problem: string }).problem, problem, url);
  }
});

test('prepareGitToken: the header and the settings are scoped to the origin, in the environment only; the token is a secret to mask', async () => {
  const doc = docOf(['url: https://git.example.com:8443/octo/site.git', 'token: env:SITE_GIT_TOKEN']);
  const prepared = (await prepareGitToken(doc, parseGitToken(doc, KEY), {
    url: 'https://git.example.com:8443/octo/site.git',
    env: { SITE_GIT_TOKEN: 'tok_123' },
  }))!;
  const basic = Buffer.from('x-access-token:tok_123').toString('base64');
  assert.equal(prepared.env, {
    GIT_CONFIG_COUNT: '3',
    GIT_CONFIG_KEY_0: 'http.https://git.example.com:8443/.extraHeader',
    GIT_CONFIG_VALUE_0: `Authorization: Basic ${basic}`,
    GIT_CONFIG_KEY_1: 'http.https://git.example.com:8443/.followRedirects',
    GIT_CONFIG_VALUE_1: 'false',
    GIT_CONFIG_KEY_2: 'credential.https://git.example.com:8443/.helper',
    GIT_CONFIG_VALUE_2: '',
    GIT_ASKPASS: '',
    GIT_TERMINAL_PROMPT: '0',
  });
  assert.equal(prepared.secrets, ['tok_123', basic]);
  assert.is(prepared.origin, 'https://git.example.com:8443');
  assert.is(
    await prepareGitToken(doc, undefined, { url: 'git@github.com:o/s.git' }),
    undefined,
    'no token, nothing checked',
  );
});

test("prepareGitToken: a token git could not send safely, or one that cannot be read, is a ConfigError at token:'s line", async () => {
  const doc = docOf(['url: https://github.com/octo/site.git', 'token: env:SITE_GIT_TOKEN']);
  const config = parseGitToken(doc, KEY);
  const cases: Array<[string | undefined, NodeJS.ProcessEnv, RegExp]> = [
    [
      'https://github.com/octo/site.git',
      { SITE_GIT_TOKEN: 'tok\r\nX-Evil: 1' },
      /shipkit\.yml:4: token: the token holds a space, line break or control character/,
    ],
    ['https://github.com/octo/site.git', { SITE_GIT_TOKEN: 'two words' }, /holds a space/],
    [
      'https://github.com/octo/site.git',
      {},
      /shipkit\.yml:4: token: environment variable SITE_GIT_TOKEN is not set or empty/,
    ],
    [
      'git@github.com:octo/site.git',
      { SITE_GIT_TOKEN: 't' },
      /shipkit\.yml:4: token: the remote git@github\.com:octo\/site\.git is reached over ssh/,
    ],
    [undefined, { SITE_GIT_TOKEN: 't' }, /names no url:/],
  ];
  for (const [url, env, message] of cases) {
    const error = await prepareGitToken(doc, config, { url, env }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.instance(error, ConfigError, String(url));
    assert.match((error as Error).message, message);
    assert.not.ok((error as Error).message.includes('X-Evil'), 'the token is not repeated');
  }
});

test("explainGitTokenFailure: 401, a redirect (its target looked up), 403, 404 and another host's prompt, each saying what to do", async () => {
  const token = parseGitToken(docOf(['token: env:T']), KEY);
  const url = 'https://git.example.com/octo/site.git';
  const fail = (...lines: string[]) =>
    new StepFailure('`git clone` failed (exit 128).', { lastLines: lines, commandExit: 128 });
  const explain = async (error: unknown) =>
    (
      (await explainGitTokenFailure(
        error,
        { url, token },
        { probe: async () => 'https://new.example.com/octo/site.git' },
      )) as Error
    ).message;
  assert.match(
    await explain(fail("fatal: could not read Username for 'https://git.example.com': terminal prompts disabled")),
    /^The token for https:\/\/git\.example\.com was refused \(HTTP 401\): check that token: /,
  );
  assert.match(
    await explain(fail("fatal: Authentication failed for 'https://git.example.com/octo/site.git/'")),
    /refused \(HTTP 401\)/,
  );
  assert.match(
    await explain(
      fail("fatal: unable to access 'https://git.example.com/octo/site.git/': The requested URL returned error: 301"),
    ),
    /^The remote https:\/\/git\.example\.com\/octo\/site\.git\/ redirected to https:\/\/new\.example\.com\/octo\/site\.git \(HTTP 301\); the token is only sent to https:\/\/git\.example\.com .*set url: in shipkit\.yml to the final address\.$/,
  );
  assert.match(
    await explain(
      fail("fatal: unable to access 'https://git.example.com/octo/site.git/': The requested URL returned error: 403"),
    ),
    /may not read this repository \(HTTP 403\): give it read access/,
  );
  assert.match(
    await explain(
      fail('remote: Repository not found.', "fatal: repository 'https://git.example.com/octo/site.git/' not found"),
    ),
    /says the repository does not exist \(HTTP 404\)/,
  );
  assert.match(
    await explain(fail("fatal: could not read Username for 'https://other.example.com': terminal prompts disabled")),
    /^https:\/\/other\.example\.com asked for a user name and password; the token is only sent to https:\/\/git\.example\.com/,
  );
  const unrelated = fail('fatal: not a git repository');
  assert.is(await explainGitTokenFailure(unrelated, { url, token }), unrelated, 'other failures pass through');
  const denied = fail("fatal: could not read Username for 'https://git.example.com': terminal prompts disabled");
  assert.is(
    await explainGitTokenFailure(denied, { url, token: undefined }),
    denied,
    'without a token: not ours to explain',
  );
});

test.run();
