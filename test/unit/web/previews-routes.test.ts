// The previews API on a real listener over a fake PreviewControl: the token (a read may also be a
// session, a write never), the documented fields, each action reaching the control, and every
// malformed body refused before the control hears of it.
// The curl examples of docs/previews.md, "Commands and the HTTP API", are these requests.
import { request } from 'node:http';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fakePreviewControl, previewRecord, startPreviewsApi, type PreviewsApi } from '../../fixtures/previews/api.ts';
import { MAX_PREVIEW_BODY_BYTES, previewTargetOf } from '../../../lib/web/previews-routes.ts';

const TOKEN = 'the-read-token';
const auth = { Authorization: `Bearer ${TOKEN}` };
const json = { ...auth, 'Content-Type': 'application/json' };

async function withApi(
  run: (api: PreviewsApi, control: ReturnType<typeof fakePreviewControl>) => Promise<void>,
  options: { token?: string | null; control?: boolean } = {},
) {
  const control = fakePreviewControl([
    previewRecord('octo/site', 42, { reason: undefined, job: 'j-1', live: { sha: 'f'.repeat(40), port: 41000 } }),
    previewRecord('octo/site', 7, { state: 'waiting for approval', since: '2026-11-19T00:00:00.000Z', url: undefined }),
  ]);
  const api = await startPreviewsApi({
    control: options.control === false ? undefined : control,
    token: options.token === null ? undefined : (options.token ?? TOKEN),
  });
  try {
    await run(api, control);
  } finally {
    await api.close();
  }
}

const post = (api: PreviewsApi, action: string, body: string, headers: Record<string, string> = json) =>
  fetch(`${api.url}/previews/${action}`, { method: 'POST', headers, body });

test('no token, a wrong one, or a session-less read: 401, and nothing is listed or done', () =>
  withApi(async (api, control) => {
    const tries: Array<Record<string, string>> = [
      {},
      { Authorization: 'Bearer nope' },
      { Authorization: 'Basic eDp5' },
    ];
    for (const headers of tries) {
      const list = await fetch(`${api.url}/previews`, { headers });
      assert.is(list.status, 401);
      assert.is(list.headers.get('www-authenticate'), 'Bearer');
      assert.equal(await list.json(), { error: 'unauthorized' });
      const write = await post(api, 'approve', '{"repo":"octo/site","pr":42}', {
        ...headers,
        'Content-Type': 'application/json',
      });
      assert.is(write.status, 401);
      await write.arrayBuffer();
    }
    assert.equal(control.calls, []);
  }));

test('GET /previews: the documented fields first, newest change first', () =>
  withApi(async (api) => {
    const res = await fetch(`${api.url}/previews`, { headers: auth });
    assert.is(res.status, 200);
    const { previews } = (await res.json()) as { previews: Array<Record<string, unknown>> };
    assert.equal(
      previews.map((p) => Object.keys(p)),
      Array(2).fill(['repo', 'pr', 'name', 'url', 'head', 'state', 'since', 'reason', 'job', 'live_sha']),
    );
    assert.equal(previews[0], {
      repo: 'octo/site',
      pr: 42,
      name: 'pr-42',
      url: 'https://pr-42.preview.example.com/',
      head: 'abcdef1234567890abcdef1234567890abcdef12',
      state: 'live',
      since: '2026-11-20T10:00:00.000Z',
      reason: null,
      job: 'j-1',
      live_sha: 'f'.repeat(40),
    });
    assert.is(previews[1].state, 'waiting for approval');
    assert.is(previews[1].url, null);
    const head = await fetch(`${api.url}/previews`, { method: 'HEAD', headers: auth });
    assert.is(head.status, 200);
    const put = await fetch(`${api.url}/previews`, { method: 'PUT', headers: auth });
    assert.is(put.status, 405);
    assert.is(put.headers.get('allow'), 'GET, HEAD');
  }));

test('previews off (no control, or no token): 404 "previews are off"', async () => {
  for (const options of [{ control: false }, { token: null }]) {
    await withApi(async (api, control) => {
      const list = await fetch(`${api.url}/previews`, { headers: auth });
      assert.is(list.status, 404);
      assert.equal(await list.json(), { error: 'previews are off' });
      const write = await post(api, 'rm', '{"repo":"octo/site","pr":42}');
      assert.is(write.status, 404);
      await write.arrayBuffer();
      assert.equal(control.calls, []);
    }, options);
  }
});

test('approve, rebuild and rm call the control and answer its record', () =>
  withApi(async (api, control) => {
    const approved = await post(api, 'approve', '{"repo":"octo/site","pr":7}');
    assert.is(approved.status, 200);
    assert.equal(
      { ...((await approved.json()) as object), since: undefined },
      {
        repo: 'octo/site',
        pr: 7,
        name: 'pr-7',
        url: null,
        head: 'abcdef1234567890abcdef1234567890abcdef12',
        state: 'building',
        since: undefined,
        reason: null,
        job: null,
        live_sha: null,
      },
    );
    const rebuilt = await post(api, 'rebuild', '{"repo":"octo/site","pr":42}');
    assert.is(rebuilt.status, 200);
    assert.is(((await rebuilt.json()) as { state: string }).state, 'building');
    const removed = await post(api, 'rm', '{"pr":42,"repo":"octo/site"}', {
      ...json,
      'Content-Type': 'application/json; charset=utf-8',
    });
    assert.is(removed.status, 200);
    const body = (await removed.json()) as { state: string; reason: string };
    assert.is(body.state, 'torn down');
    assert.match(body.reason, 'previews rm');
    assert.equal(control.calls, ['approve octo/site#7 by token', 'rebuild octo/site#42', 'remove octo/site#42']);
  }));

test('a preview the control does not know: 404 naming it', () =>
  withApi(async (api, control) => {
    const res = await post(api, 'approve', '{"repo":"octo/other","pr":3}');
    assert.is(res.status, 404);
    assert.equal(await res.json(), { error: 'no preview of octo/other#3' });
    assert.equal(control.calls, ['approve octo/other#3 by token']);
    const unknown = await post(api, 'merge', '{"repo":"octo/site","pr":42}');
    assert.is(unknown.status, 404);
    await unknown.arrayBuffer();
    const get = await fetch(`${api.url}/previews/approve`, { headers: auth });
    assert.is(get.status, 405);
    assert.is(get.headers.get('allow'), 'POST');
  }));

test('GET /previews/log: the token, text/plain never sniffed, 400 for a bad query, 404 for an unknown preview', () =>
  withApi(async (api, control) => {
    const log = (query: string, headers: Record<string, string> = auth) =>
      fetch(`${api.url}/previews/log${query}`, { headers });
    const denied = await log('?repo=octo/site&pr=42', {});
    assert.is(denied.status, 401);
    await denied.arrayBuffer();
    assert.equal(control.calls, [], 'nothing read without the token');
    const res = await log('?repo=octo/site&pr=42');
    assert.is(res.status, 200);
    assert.is(res.headers.get('content-type'), 'text/plain; charset=utf-8');
    assert.is(res.headers.get('x-content-type-options'), 'nosniff');
    assert.is(await res.text(), 'octo/site#42: live\n<script>alert(1)</script>\n');
    for (const bad of ['', '?repo=octo/site', '?repo=../etc&pr=1', '?repo=octo/site&pr=0', '?repo=octo/site&pr=1e3x']) {
      const r = await log(bad);
      assert.is(r.status, 400, bad);
      assert.match((await r.json()).error, /repo must be|pr must be|give \?repo/);
    }
    const unknown = await log('?repo=octo/other&pr=3');
    assert.is(unknown.status, 404);
    assert.equal(await unknown.json(), { error: 'no preview of octo/other#3' });
    const post = await fetch(`${api.url}/previews/log?repo=octo/site&pr=42`, { method: 'POST', headers: json });
    assert.is(post.status, 405);
    await post.arrayBuffer();
    assert.equal(control.calls, ['log octo/site#42', 'log octo/other#3']);
  }));

test('malformed bodies and bad names: 400 (too large: 413; not JSON typed: 415), and the control is not called', () =>
  withApi(async (api, control) => {
    const bad: Array<[string, number]> = [
      ['{"repo":"octo/site","pr":42', 400],
      ['[]', 400],
      ['null', 400],
      ['{"repo":"octo/site"}', 400],
      ['{"repo":"octo/site","pr":0}', 400],
      ['{"repo":"octo/site","pr":-1}', 400],
      ['{"repo":"octo/site","pr":1.5}', 400],
      ['{"repo":"octo/site","pr":"42"}', 400],
      ['{"repo":"octo/site","pr":1000000000}', 400],
      ['{"repo":"octo/../etc","pr":42}', 400],
      ['{"repo":"../site","pr":42}', 400],
      ['{"repo":"octo/site#1","pr":42}', 400],
      ['{"repo":"octo/site\\n","pr":42}', 400],
      ['{"repo":42,"pr":42}', 400],
      [JSON.stringify({ repo: 'octo/site', pr: 42, pad: 'x'.repeat(MAX_PREVIEW_BODY_BYTES) }), 413],
    ];
    for (const [body, status] of bad) {
      const res = await post(api, 'approve', body);
      assert.is(res.status, status, body.slice(0, 60));
      assert.type(((await res.json()) as { error: string }).error, 'string');
    }
    const form = await post(api, 'rm', 'repo=octo/site&pr=42', {
      ...auth,
      'Content-Type': 'application/x-www-form-urlencoded',
    });
    assert.is(form.status, 415);
    await form.arrayBuffer();
    assert.equal(control.calls, []);
  }));

test('an oversized body sent without a length is cut off at the cap: 413', () =>
  withApi(async (api, control) => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${api.url}/previews/rm`, { method: 'POST', headers: json }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      req.write(`{"repo":"octo/site","pr":42,"x":"${'y'.repeat(MAX_PREVIEW_BODY_BYTES)}`);
      req.write('"}');
      req.end();
    });
    assert.is(status, 413);
    assert.equal(control.calls, []);
  }));

test('previewTargetOf: the pair, or a sentence', () => {
  assert.equal(previewTargetOf('{"repo":"group/sub/app","pr":999999999}'), { repo: 'group/sub/app', pr: 999999999 });
  assert.equal(previewTargetOf('{"repo":"octo/.github","pr":1}'), { repo: 'octo/.github', pr: 1 });
  assert.type(previewTargetOf('{"repo":"octo/a..b","pr":1}'), 'string');
  assert.type(previewTargetOf('{"repo":"octo/site.git/","pr":1}'), 'string');
});

test.run();
