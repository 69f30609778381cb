// @deno
// Badges from a real hook-server child after real signed deliveries: unknown → running → passing
// / failing, ?branch=, ETag and 304, the same bytes for an unconfigured repo and a configured one
// that never built, and ui: off.
import { randomUUID } from 'node:crypto';
import { appendFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  FAKE_BUILD,
  deliverGithub,
  pushPayload,
  waitForJobState,
  writeConfig,
} from '../../fixtures/hooks/deliveries.ts';
import { startScript, tmpDir } from '../../_helpers/common.ts';

const SECRET = `secret-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const env = {
  HOOK_SECRET: SECRET,
  HOOK_TOKEN: TOKEN,
  SHIPKIT_BUILD_COMMAND: FAKE_BUILD,
  SHIPKIT_RELEASE_COMMAND: FAKE_BUILD,
};

async function badge(url: string, headers: Record<string, string> = {}, method = 'GET') {
  const res = await fetch(url, { headers, method });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

const stateOf = (svg: string) => /aria-label="build: (\w+)"/.exec(svg)?.[1];

test('states follow the jobs; ETag, 304, HEAD; no oracle for which repos exist', async () => {
  const dir = tmpDir();
  const config = writeConfig(dir, { repos: { 'octo/hold': {}, 'octo/fail': {}, 'octo/never': {} } });
  appendFileSync(config, 'ui: token\n');
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env });
  try {
    const unconfigured = await badge(`${server.url}/badge/octo/nope.svg`);
    const never = await badge(`${server.url}/badge/octo/never.svg`);
    assert.is(unconfigured.status, 200);
    assert.is(stateOf(unconfigured.body), 'unknown');
    assert.is(never.body, unconfigured.body, 'same bytes');
    assert.is(never.headers.get('etag'), unconfigured.headers.get('etag'));
    const names = (h: Headers) =>
      [
        'content-type',
        'content-length',
        'cache-control',
        'etag',
        'x-content-type-options',
        'content-security-policy',
        'set-cookie',
      ].map((k) => `${k}: ${h.get(k)}`);
    assert.equal(names(never.headers), names(unconfigured.headers), 'same headers');
    assert.is(unconfigured.headers.get('cache-control'), 'no-cache');
    assert.is(unconfigured.headers.get('content-type'), 'image/svg+xml; charset=utf-8');
    assert.match(unconfigured.headers.get('etag')!, /^"[A-Za-z0-9_-]+"$/, 'a strong ETag');
    for (const route of [
      '/badge/..%2F..%2Fetc%2Fpasswd.svg',
      '/badge/%ZZ.svg',
      `/badge/${'a'.repeat(3000)}.svg`,
      '/badge/octo/never.svg?branch=%3Cscript%3E',
    ]) {
      const res = await badge(server.url + route);
      assert.is(res.status, 200, route);
      assert.is(res.body, unconfigured.body, route);
    }

    writeFileSync(path.join(dir, 'hold'), '');
    const held = await deliverGithub(server.url, 'push', pushPayload('octo/hold'), SECRET);
    await waitForJobState(server.url, TOKEN, held.json.job, ['running']);
    assert.is(stateOf((await badge(`${server.url}/badge/octo/hold.svg`)).body), 'running');
    rmSync(path.join(dir, 'hold'));
    await waitForJobState(server.url, TOKEN, held.json.job, ['succeeded']);
    const passing = await badge(`${server.url}/badge/octo/hold.svg`);
    assert.is(stateOf(passing.body), 'passing');
    assert.match(passing.body, 'fill="#4c1"');

    const etag = passing.headers.get('etag')!;
    const again = await badge(`${server.url}/badge/octo/hold.svg`, { 'If-None-Match': etag });
    assert.is(again.status, 304);
    assert.is(again.body, '');
    assert.is(again.headers.get('etag'), etag);
    assert.is(again.headers.get('cache-control'), 'no-cache');
    const head = await badge(`${server.url}/badge/octo/hold.svg`, {}, 'HEAD');
    assert.is(head.status, 200);
    assert.is(head.headers.get('etag'), etag);
    assert.is((await badge(`${server.url}/badge/octo/hold.svg`, {}, 'POST')).status, 405);

    const failed = await deliverGithub(server.url, 'push', pushPayload('octo/fail'), SECRET);
    await waitForJobState(server.url, TOKEN, failed.json.job, ['failed']);
    const failing = await badge(`${server.url}/badge/octo/fail.svg`, { 'If-None-Match': etag });
    assert.is(failing.status, 200, 'another state, another ETag');
    assert.is(stateOf(failing.body), 'failing');
    assert.is(stateOf((await badge(`${server.url}/badge/octo/fail.svg?branch=main`)).body), 'failing');
    assert.is(stateOf((await badge(`${server.url}/badge/octo/fail.svg?branch=dev`)).body), 'unknown');
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test('ui: token — a private repo (token: or ssh_key:) that built answers like an unknown one unless signed in: no oracle for which private repos are built here', async () => {
  const dir = tmpDir();
  const config = writeConfig(dir, {
    repos: { 'octo/public': {}, 'octo/private': { url: 'https://git.example.com/octo/private.git' } },
  });
  writeFileSync(
    config,
    readFileSync(config, 'utf8').replace(
      '    url: https://git.example.com/octo/private.git\n',
      '    url: https://git.example.com/octo/private.git\n    token: literal-git-token\n',
    ),
  );
  appendFileSync(config, 'ui: token\n');
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env });
  try {
    for (const repo of ['octo/public', 'octo/private']) {
      const pushed = await deliverGithub(
        server.url,
        'push',
        pushPayload(repo, {
          cloneUrl: repo === 'octo/private' ? 'https://git.example.com/octo/private.git' : undefined,
        }),
        SECRET,
      );
      assert.is(pushed.status, 202, JSON.stringify(pushed.json));
      await waitForJobState(server.url, TOKEN, pushed.json.job, ['succeeded']);
    }
    const unknown = await badge(`${server.url}/badge/octo/nope.svg`);
    assert.is(
      stateOf((await badge(`${server.url}/badge/octo/public.svg`)).body),
      'passing',
      'a public repo shows its state to anyone',
    );
    for (const route of ['/badge/octo/private.svg', '/badge/octo/private.svg?branch=main']) {
      const anonymous = await badge(server.url + route);
      assert.is(anonymous.body, unknown.body, `${route}: the same bytes as a repo that does not exist`);
      assert.is(anonymous.headers.get('etag'), unknown.headers.get('etag'), route);
    }
    assert.is(
      stateOf((await badge(`${server.url}/badge/octo/private.svg`, { Authorization: `Bearer ${TOKEN}` })).body),
      'passing',
      'bearer',
    );
    assert.is(
      stateOf((await badge(`${server.url}/badge/octo/private.svg`, { Authorization: 'Bearer wrong' })).body),
      'unknown',
      'a wrong bearer',
    );
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test('ui: off answers 404 for every badge', async () => {
  const dir = tmpDir();
  const config = writeConfig(dir, { repos: { 'octo/site': {} } });
  appendFileSync(config, 'ui: off\n');
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env });
  try {
    const pushed = await deliverGithub(server.url, 'push', pushPayload('octo/site'), SECRET);
    await waitForJobState(server.url, TOKEN, pushed.json.job, ['succeeded']);
    for (const route of ['/badge/octo/site.svg', '/badge/octo/nope.svg']) {
      const res = await badge(server.url + route);
      assert.is(res.status, 404, route);
      assert.not.match(res.body, '<svg');
    }
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test('a bad ui: or public_url: stops hook-server with exit 2 and names the key', async () => {
  const { runScript } = await import('../../_helpers/common.ts');
  const cases: Array<[string, RegExp]> = [
    ['ui: open', /ui: must be one of token, public, off/],
    ['public_url: ftp://ci.example.com', /public_url: must start with https:\/\/ or http:\/\//],
    ['public_url: https://user:pw@ci.example.com', /public_url: must not carry a user name or password/],
    ['public_url: https://ci.example.com/?x=1', /public_url: must not have a query/],
    ['public_url: ci.example.com', /public_url: must be an absolute URL/],
  ];
  for (const [line, message] of cases) {
    const dir = tmpDir();
    const config = writeConfig(dir, { repos: { 'octo/site': {} } });
    appendFileSync(config, `${line}\n`);
    const res = await runScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env });
    assert.is(res.exitCode, 2, line);
    assert.match(res.stderr, message, line);
    assert.not.match(res.stderr, 'pw@', line);
  }
});

test.run();
