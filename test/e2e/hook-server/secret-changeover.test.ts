// A leaked webhook secret, changed over without a lost delivery (docs/security.md "When a secret
// leaks"): `secret:` lists the new secret first and the old one with `until:`; both are taken,
// each use of the old one is logged and counted in /metrics, and after `until` it is refused.
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { deliverGithub, pushPayload } from '../../fixtures/hooks/deliveries.ts';
import { runScript, startScript, tmpDir } from '../../_helpers/common.ts';

const OLD = `old-${randomUUID()}`;
const NEW = `new-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const env = { HOOK_OLD: OLD, HOOK_NEW: NEW, HOOK_TOKEN: TOKEN };

function config(dir: string, secret: string): string {
  const file = path.join(dir, 'shipkit.yml');
  const lines = [
    'listen: 127.0.0.1:0',
    `data: ${path.join(dir, 'data')}`,
    `secret: ${secret}`,
    'token: env:HOOK_TOKEN',
    'repos:',
    '  octo/site:',
    '    branch: main',
  ];
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

// A push to another branch is checked against the repo's secret and then ignored: no build runs.
const push = (url: string, secret: string) =>
  deliverGithub(url, 'push', pushPayload('octo/site', { branch: 'elsewhere' }), secret);

const oldSecretCount = async (url: string) => {
  const text = await (await fetch(`${url}/metrics`, { headers: { Authorization: `Bearer ${TOKEN}` } })).text();
  return Number(/shipkit_webhook_old_secret_total\{repo="octo\/site"\} (\d+)/.exec(text)?.[1] ?? 0);
};

test('during the change-over both secrets are taken; the old one is logged and counted each time', async () => {
  const dir = tmpDir();
  const until = new Date(Date.now() + 86_400_000).toISOString();
  const server = await startScript(
    'hook-server',
    ['--config', config(dir, `[env:HOOK_NEW, {secret: env:HOOK_OLD, until: "${until}"}]`)],
    { env },
  );
  try {
    assert.is((await push(server.url, NEW)).status, 200);
    assert.is(await oldSecretCount(server.url), 0, 'the new secret is not counted');
    assert.is((await push(server.url, OLD)).status, 200);
    assert.is((await push(server.url, OLD)).status, 200);
    assert.is(await oldSecretCount(server.url), 2);
    assert.match(server.output(), /delivery signed with an old secret/);
    assert.is((await push(server.url, `other-${randomUUID()}`)).status, 401, 'an unlisted secret is refused');
    assert.not.match(server.output(), new RegExp(`${OLD}|${NEW}`), 'no secret in the log');
  } finally {
    await server.stop();
  }
});

test('after until the old secret is refused, naming when it ended; the new one goes on', async () => {
  const dir = tmpDir();
  const server = await startScript(
    'hook-server',
    ['--config', config(dir, '[env:HOOK_NEW, {secret: env:HOOK_OLD, until: 2020-01-01}]')],
    { env },
  );
  try {
    const refused = await push(server.url, OLD);
    assert.is(refused.status, 401);
    assert.match(server.output(), /old secret of octo\/site that ended 2020-01-01T00:00:00\.000Z/);
    assert.is((await push(server.url, NEW)).status, 200);
  } finally {
    await server.stop();
  }
});

test('a change-over list the config cannot take stops hook-server at start, naming the entry', async () => {
  const dir = tmpDir();
  const cases: Array<[string, RegExp]> = [
    [
      '[{secret: env:HOOK_NEW, until: 2030-01-01}, env:HOOK_OLD]',
      /secret\[0\]\.until: the first secret is the current one/,
    ],
    ['[env:HOOK_NEW, {secret: env:HOOK_OLD, until: someday}]', /secret\[1\]\.until: must be a date/],
    ['[env:HOOK_NEW, {secret: env:HOOK_OLD, since: 2020-01-01}]', /secret\[1\]\.since: unknown key/],
    ['[]', /secret: must list 1 to 4 secrets/],
  ];
  for (const [secret, pattern] of cases) {
    const result = await runScript('hook-server', ['--config', config(dir, secret)], { env });
    assert.is(result.exitCode, 2, secret);
    assert.match(result.stderr, pattern, secret);
  }
});

test.run();
