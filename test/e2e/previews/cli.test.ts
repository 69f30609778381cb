// `shipkit previews` as a user runs it, against the previews API (lib/web/previews-routes.ts) on
// a real listener over a fake PreviewControl: the address from listen:, the token from token:,
// the table, show, the writes, a bad REPO#N refused before anything is sent, hook-server down.
// The commands of docs/previews.md, "Commands and the HTTP API".
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closedPort, runScript, tmpDir } from '../../_helpers/common.ts';
import {
  fakePreviewControl,
  previewRecord,
  startPreviewsApi,
  type FakeControl,
  type PreviewsApi,
} from '../../fixtures/previews/api.ts';

const TOKEN = 'the-read-token';

/** A shipkit.yml whose listen: is the API's port and whose token: is a file next to it. */
function writeConfig(port: number, token = TOKEN): string {
  const dir = tmpDir();
  writeFileSync(path.join(dir, 'token'), `${token}\n`);
  const file = path.join(dir, 'shipkit.yml');
  writeFileSync(
    file,
    `listen: 0.0.0.0:${port}\ntoken: file:token\ndata: ${path.join(dir, 'data')}\nsecret: s3cret\nrepos:\n  octo/site: {}\n`,
  );
  return file;
}

async function withApi(run: (api: PreviewsApi, control: FakeControl, config: string) => Promise<void>) {
  const recent = new Date(Date.now() - 3 * 3600_000).toISOString();
  const control = fakePreviewControl([
    previewRecord('octo/site', 42, { since: recent, head: '0123456789abcdef0123456789abcdef01234567' }),
    previewRecord('octo/site', 7, {
      state: 'failed',
      since: '2026-01-01T00:00:00.000Z',
      reason: 'npm ci failed\n\u001b[31mred\u202e',
      url: undefined,
    }),
    previewRecord('octo/docs', 3, { since: '2025-12-01T00:00:00.000Z', state: 'waiting for approval' }),
  ]);
  const api = await startPreviewsApi({ control, token: TOKEN });
  try {
    await run(api, control, writeConfig(Number(new URL(api.url).port)));
  } finally {
    await api.close();
  }
}

test('list: a table from GET /previews at listen:, with the token of token:', () =>
  withApi(async (api, control, config) => {
    const r = await runScript('previews', ['list', '--config', config]);
    assert.is(r.exitCode, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.match(lines[0], /^NAME\s+REPO\s+STATE\s+HEAD\s+AGE\s+URL$/);
    assert.match(lines[1], /^pr-42\s+octo\/site\s+live\s+0123456\s+3 h\s+https:\/\/pr-42\.preview\.example\.com\/$/);
    assert.match(lines[2], /^pr-7\s+octo\/site\s+failed\s+abcdef1\s+\d+ d\s+-$/);
    assert.is(lines.length, 4);
    assert.equal(api.requests, ['GET /previews']);
    assert.equal(control.calls, []);

    const one = await runScript('previews', ['list', '--repo', 'octo/docs', '--json', '--config', config]);
    assert.is(one.exitCode, 0, one.stderr);
    const { previews } = JSON.parse(one.stdout) as { previews: Array<{ repo: string; pr: number; state: string }> };
    assert.equal(
      previews.map((p) => [p.repo, p.pr, p.state]),
      [['octo/docs', 3, 'waiting for approval']],
    );
  }));

test('show: one preview, its reason escaped; an unknown one exits 1', () =>
  withApi(async (_api, _control, config) => {
    const r = await runScript('previews', ['show', 'octo/site#7', '--config', config]);
    assert.is(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, /^preview: +octo\/site#7 \(pr-7\)$/m);
    assert.match(r.stdout, /^state: +failed since 2026-01-01T00:00:00.000Z/m);
    assert.match(r.stdout, /^reason: +npm ci failed\\u000a\\u001b\[31mred\\u202e$/m);
    assert.not.match(r.stdout, /[\u001b\u202e]/);
    const json = await runScript('previews', ['show', 'octo/site#42', '--json', '--config', config]);
    assert.is(json.exitCode, 0, json.stderr);
    assert.is(JSON.parse(json.stdout).head, '0123456789abcdef0123456789abcdef01234567');
    const missing = await runScript('previews', ['show', 'octo/site#8', '--config', config]);
    assert.is(missing.exitCode, 1);
    assert.match(missing.stderr, 'No preview of octo/site#8');
  }));

test('approve, rebuild, rm: POSTed with the token, the state after printed; unknown → exit 1 with the reason', () =>
  withApi(async (api, control, config) => {
    const approve = await runScript('previews', ['approve', 'octo/docs#3', '--config', config]);
    assert.is(approve.exitCode, 0, approve.stderr);
    assert.is(approve.stdout, 'octo/docs#3 approved: building\n');
    const rebuild = await runScript('previews', ['rebuild', 'octo/site#7', '--url', api.url, '--config', config]);
    assert.is(rebuild.exitCode, 0, rebuild.stderr);
    assert.is(rebuild.stdout, 'octo/site#7 rebuilding: building\n');
    const rm = await runScript('previews', ['rm', 'octo/site#42', '--json', '--config', config]);
    assert.is(rm.exitCode, 0, rm.stderr);
    assert.is(JSON.parse(rm.stdout).state, 'torn down');
    assert.equal(control.calls, ['approve octo/docs#3 by token', 'rebuild octo/site#7', 'remove octo/site#42']);

    const unknown = await runScript('previews', ['rm', 'octo/site#9', '--config', config]);
    assert.is(unknown.exitCode, 1);
    assert.is(unknown.stdout, '');
    assert.match(unknown.stderr, 'hook-server refused POST /previews/rm: no preview of octo/site#9.');
  }));

test('a wrong token: exit 1, hook-server says unauthorized and the hint names token:', () =>
  withApi(async (api, control) => {
    const config = writeConfig(Number(new URL(api.url).port), 'not-the-token');
    const r = await runScript('previews', ['approve', 'octo/docs#3', '--config', config]);
    assert.is(r.exitCode, 1);
    assert.match(r.stderr, /refused POST \/previews\/approve: unauthorized \(the token: of this shipkit\.yml/);
    assert.equal(control.calls, []);
  }));

test('a bad REPO#N: exit 2 with what one looks like, nothing sent', () =>
  withApi(async (api, control, config) => {
    for (const ref of ['octo/site', 'octo/site#0', 'octo/site#x', '#42', 'octo/../etc#4', 'octo/site#1234567890']) {
      for (const verb of ['show', 'approve', 'rm']) {
        const r = await runScript('previews', [verb, ref, '--config', config]);
        assert.is(r.exitCode, 2, `${verb} ${ref}: ${r.stderr}`);
        assert.match(r.stderr, 'give REPO#N, such as octo/site#42');
        assert.is(r.stdout, '');
      }
    }
    const none = await runScript('previews', ['approve', '--config', config]);
    assert.is(none.exitCode, 2);
    assert.equal(api.requests, []);
    assert.equal(control.calls, []);
  }));

test('hook-server not running: exit 1, "is hook-server running?" with the address', async () => {
  const port = await closedPort();
  const config = writeConfig(port);
  for (const args of [['list'], ['approve', 'octo/site#42']]) {
    const r = await runScript('previews', [...args, '--config', config]);
    assert.is(r.exitCode, 1, r.stderr);
    assert.match(r.stderr, `is hook-server running? (http://127.0.0.1:${port}/)`);
    assert.is(r.stdout, '');
  }
});

test('no token: in shipkit.yml: exit 2, said so', async () => {
  const dir = tmpDir();
  const file = path.join(dir, 'shipkit.yml');
  writeFileSync(file, `data: ${path.join(dir, 'data')}\nsecret: s3cret\nrepos:\n  octo/site: {}\n`);
  const r = await runScript('previews', ['list', '--config', file]);
  assert.is(r.exitCode, 2);
  assert.match(r.stderr, 'has no token: setting');
});

test.run();
