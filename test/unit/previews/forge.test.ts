// What the forge hears of a preview (lib/previews/forge.ts) against a fake forge API on loopback
// that answers as GitHub, Gitea and GitLab do: one comment made and then edited (never a second),
// the status `shipkit/preview` in each forge's documented shape (test/fixtures/forge-status.ts),
// retries, an API down, a comment deleted by a human, and hostile sender text in the comment.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createLogger } from '../../../lib/core/log.ts';
import type { ResolvedReport } from '../../../lib/config/report.ts';
import {
  COMMENT_MARKER,
  MAX_SENDER_TEXT,
  forgeTargetOf,
  inertMarkdown,
  previewComment,
  tellForge,
  type ForgeTarget,
  type PreviewNotice,
} from '../../../lib/previews/forge.ts';
import type { PreviewRecord } from '../../../lib/previews/store.ts';
import {
  giteaStatusOperation,
  gitlabStatusOperation,
  requestProblems,
  type Operation,
} from '../../fixtures/forge-status.ts';
import { closedPort } from '../../_helpers/common.ts';

const TOKEN = 'tok-preview-5ecret';
const SHA = 'abcdef0123456789abcdef0123456789abcdef01';
const FAST = { attempts: 3, backoffMs: 5, maxWaitMs: 20 };
type Forge = ForgeTarget['forge'];

interface Seen {
  method: string;
  path: string;
  auth: string | undefined;
  body: any;
  problems: string[];
}

/** Answers the next requests matching `path` (and `method`) with `status`, before the forge's own answer. */
interface Fault {
  method?: string;
  path: RegExp;
  status: number;
  times: number;
}

/** A forge API on 127.0.0.1: statuses 201, comment create 201 {id}, edit 200 (404 for an unknown id). */
async function startForge(forge: Forge) {
  const seen: Seen[] = [];
  const faults: Fault[] = [];
  const comments = new Map<number, string>();
  let nextId = 900;
  const prefix = forge === 'github' ? '' : forge === 'gitea' ? '/api/v1' : '/api/v4';
  const statusOp: Operation =
    forge === 'gitlab'
      ? gitlabStatusOperation(TOKEN)
      : forge === 'gitea'
        ? giteaStatusOperation(TOKEN)
        : { ...giteaStatusOperation(TOKEN), headers: { authorization: (v) => v === `Bearer ${TOKEN}` } };
  const server = http.createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (c) => (text += c));
    req.on('end', () => {
      const path = (req.url ?? '').slice(prefix.length);
      const method = req.method ?? '';
      const auth = (req.headers.authorization ?? req.headers['private-token']) as string | undefined;
      const entry: Seen = { method, path, auth, body: undefined, problems: [] };
      try {
        entry.body = JSON.parse(text);
      } catch {
        entry.problems.push('not JSON');
      }
      seen.push(entry);
      const reply = (status: number, body: unknown = {}) => {
        res.writeHead(status, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      const fault = faults.find((f) => f.times > 0 && f.path.test(path) && (!f.method || f.method === method));
      if (fault) {
        fault.times--;
        return reply(fault.status, { message: 'injected' });
      }
      if (/\/statuses\/[0-9a-f]+$/.test(path)) {
        entry.problems.push(...requestProblems(statusOp, method, path, req.headers, text).problems);
        return reply(201, { id: 1, state: entry.body?.state });
      }
      const create =
        forge === 'gitlab'
          ? /^\/projects\/[^/]+\/merge_requests\/\d+\/notes$/
          : /^\/repos\/[^/]+\/[^/]+\/issues\/\d+\/comments$/;
      const edit =
        forge === 'gitlab'
          ? /^\/projects\/[^/]+\/merge_requests\/\d+\/notes\/(\d+)$/
          : /^\/repos\/[^/]+\/[^/]+\/issues\/comments\/(\d+)$/;
      if (method === 'POST' && create.test(path)) {
        const id = nextId++;
        comments.set(id, entry.body.body);
        return reply(201, { id, body: entry.body.body, user: { id: 7 } });
      }
      const m = edit.exec(path);
      if (m && method === (forge === 'gitlab' ? 'PUT' : 'PATCH')) {
        if (!comments.has(Number(m[1]))) return reply(404, { message: 'Not Found' });
        comments.set(Number(m[1]), entry.body.body);
        return reply(200, { id: Number(m[1]), body: entry.body.body });
      }
      reply(404, { message: `no route ${method} ${path}` });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const api = `http://127.0.0.1:${(server.address() as AddressInfo).port}${prefix}`;
  forges.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { target: { forge, api, token: TOKEN } as ForgeTarget, seen, faults, comments };
}

const forges: Array<() => Promise<void>> = [];
test.after.each(async () => {
  await Promise.all(forges.splice(0).map((close) => close()));
});

function capture() {
  let text = '';
  const log = createLogger({
    json: true,
    env: {},
    stream: { write: (c: string) => ((text += c), true) } as unknown as NodeJS.WritableStream,
  });
  return { log, text: () => text };
}

function notice(fields: Partial<PreviewNotice> = {}): PreviewNotice {
  return {
    repo: 'octo/site',
    pr: 42,
    sha: SHA,
    state: 'pending',
    description: 'preview building',
    comment: `${COMMENT_MARKER}\nbuilding`,
    ...fields,
  };
}

function record(fields: Partial<PreviewRecord> = {}): PreviewRecord {
  return {
    repo: 'octo/site',
    pr: 42,
    name: 'pr-42',
    head: SHA,
    headRef: 'feature/login',
    headRepo: 'octo/site',
    cloneUrl: 'https://github.com/octo/site.git',
    fromFork: false,
    title: 'Fix the login page',
    prUrl: 'https://github.com/octo/site/pull/42',
    state: 'building',
    since: '2026-11-22T10:00:00.000Z',
    pushed: '2026-11-22T10:00:00.000Z',
    ...fields,
  };
}

for (const forge of ['github', 'gitea'] as const) {
  test(`${forge}: the first call makes the comment and sets the status; the next edits that comment`, async () => {
    const api = await startForge(forge);
    const { log } = capture();
    const first = await tellForge(api.target, notice(), { log, retry: FAST });
    assert.equal(first.errors, []);
    assert.is(first.commentId, '900');
    const status = api.seen.find((s) => s.path.includes('/statuses/'))!;
    assert.is(status.method, 'POST');
    assert.is(status.path, `/repos/octo/site/statuses/${SHA}`);
    assert.equal(status.problems, []);
    assert.equal(status.body, { state: 'pending', description: 'preview building', context: 'shipkit/preview' });
    assert.is(status.auth, forge === 'github' ? `Bearer ${TOKEN}` : `token ${TOKEN}`);
    const made = api.seen.find((s) => s.path.endsWith('/comments'))!;
    assert.equal([made.method, made.path], ['POST', '/repos/octo/site/issues/42/comments']);

    const url = 'https://pr-42.preview.example.com/';
    const second = await tellForge(
      api.target,
      notice({ state: 'success', targetUrl: url, comment: `${COMMENT_MARKER}\nlive` }),
      { log, retry: FAST, commentId: first.commentId },
    );
    assert.equal(second, { commentId: '900', errors: [] });
    const edits = api.seen.filter((s) => s.path.includes('/comments'));
    assert.equal(
      edits.map((s) => `${s.method} ${s.path}`),
      ['POST /repos/octo/site/issues/42/comments', 'PATCH /repos/octo/site/issues/comments/900'],
    );
    assert.equal([...api.comments], [[900, `${COMMENT_MARKER}\nlive`]], 'one comment, edited');
    const last = api.seen.filter((s) => s.path.includes('/statuses/')).at(-1)!;
    assert.equal(last.body, {
      state: 'success',
      target_url: url,
      description: 'preview building',
      context: 'shipkit/preview',
    });
    assert.ok(
      api.seen.every((s) => s.auth?.endsWith(TOKEN)),
      'every request carries the token',
    );
  });
}

test('gitlab: notes on merge_requests/IID and the status on the project, by its encoded path', async () => {
  const api = await startForge('gitlab');
  const { log } = capture();
  const n = notice({ repo: 'group/sub/site', pr: 7, state: 'failure', targetUrl: 'https://ci.example.com/log/1' });
  const first = await tellForge(api.target, n, { log, retry: FAST });
  assert.equal(first, { commentId: '900', errors: [] });
  const again = await tellForge(api.target, n, { log, retry: FAST, commentId: '900' });
  assert.equal(again, { commentId: '900', errors: [] });
  const calls = api.seen.map((s) => `${s.method} ${s.path}`);
  assert.equal(
    calls.filter((c) => c.includes('/notes')),
    [
      'POST /projects/group%2Fsub%2Fsite/merge_requests/7/notes',
      'PUT /projects/group%2Fsub%2Fsite/merge_requests/7/notes/900',
    ],
  );
  const status = api.seen.find((s) => s.path.includes('/statuses/'))!;
  assert.is(status.path, `/projects/group%2Fsub%2Fsite/statuses/${SHA}`);
  assert.equal(status.problems, []);
  assert.is(status.body.state, 'failed');
  assert.is(status.body.name, 'shipkit/preview');
  assert.is(status.body.target_url, 'https://ci.example.com/log/1');
  assert.is(status.auth, TOKEN);
});

test('a 500 is tried again and then succeeds; non-http(s) target URLs and long descriptions are trimmed', async () => {
  const api = await startForge('github');
  api.faults.push({ path: /\/statuses\//, status: 500, times: 1 }, { path: /\/comments$/, status: 502, times: 1 });
  const { log, text } = capture();
  const result = await tellForge(
    api.target,
    notice({ targetUrl: 'javascript:alert(1)', description: 'x'.repeat(500) }),
    { log, retry: FAST },
  );
  assert.equal(result, { commentId: '900', errors: [] });
  const statuses = api.seen.filter((s) => s.path.includes('/statuses/'));
  assert.is(statuses.length, 2);
  assert.not.ok('target_url' in statuses[1].body);
  assert.is(Array.from(statuses[1].body.description as string).length, 140);
  assert.is(api.seen.filter((s) => s.path.endsWith('/comments')).length, 2);
  assert.is(api.comments.size, 1);
  assert.match(text(), /trying again/);
  assert.not.match(text(), TOKEN);
});

test('the API down or answering 500 always: errors, no throw, quickly, and never the token', async () => {
  const { log, text } = capture();
  const started = Date.now();
  const down: ForgeTarget = { forge: 'github', api: `http://127.0.0.1:${await closedPort()}`, token: TOKEN };
  const a = await tellForge(down, notice(), { log, retry: FAST });
  assert.is(a.errors.length, 2, a.errors.join('\n'));
  assert.is(a.commentId, undefined);
  assert.match(a.errors.join('\n'), /could not connect \(ECONNREFUSED\) \(3 attempts\)/);

  const api = await startForge('gitea');
  api.faults.push({ path: /./, status: 500, times: 1000 });
  const b = await tellForge(api.target, notice(), { log, retry: FAST, commentId: '12' });
  assert.is(b.errors.length, 2, b.errors.join('\n'));
  assert.is(b.commentId, '12', 'the held comment is kept when its edit fails');
  assert.match(b.errors.join('\n'), /answered 500 \(3 attempts\)/);
  assert.is(api.seen.length, 6);
  for (const error of [...a.errors, ...b.errors]) assert.not.match(error, TOKEN);
  assert.not.match(text(), TOKEN);
  assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
});

test('a refusal is not tried again and says what to do', async () => {
  const api = await startForge('github');
  api.faults.push({ path: /./, status: 403, times: 1000 });
  const { log } = capture();
  const result = await tellForge(api.target, notice(), { log, retry: FAST });
  assert.is(api.seen.length, 2);
  assert.match(result.errors.join('\n'), /403: the token may not set statuses on octo\/site/);
  assert.match(result.errors.join('\n'), /403: the token may not comment here/);
});

test('a comment deleted by a human (404 on edit) is made anew, and its new id returned', async () => {
  const api = await startForge('github');
  const { log } = capture();
  const result = await tellForge(api.target, notice(), { log, retry: FAST, commentId: '555' });
  assert.equal(result, { commentId: '900', errors: [] });
  assert.equal(
    api.seen.filter((s) => s.path.includes('/comments')).map((s) => `${s.method} ${s.path}`),
    ['PATCH /repos/octo/site/issues/comments/555', 'POST /repos/octo/site/issues/42/comments'],
  );
});

test('GitLab refusing an unchanged status (400 "Cannot transition status") is no error', async () => {
  const api = await startForge('gitlab');
  api.faults.push({ path: /\/statuses\//, status: 400, times: 1 });
  const { log } = capture();
  // The fault answers {"message":"injected"}: a 400 that does not say "transition" stays an error.
  const refused = await tellForge(api.target, notice(), { log, retry: FAST });
  assert.match(refused.errors.join('\n'), /400/);
  const server = http.createServer((_req, res) => {
    res.writeHead(400, { 'Content-Type': 'application/json' });
    res.end('{"message":"Cannot transition status via :run from :running"}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  forges.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const target: ForgeTarget = {
    forge: 'gitlab',
    api: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    token: TOKEN,
  };
  const unchanged = await tellForge(target, notice(), { log, retry: FAST, commentId: '1' });
  assert.is(unchanged.errors.length, 1, 'only the comment failed');
  assert.match(unchanged.errors[0], /^comment 1 on octo\/site#42 not edited/);
});

test('a notice that cannot become a URL is refused before anything is sent', async () => {
  const api = await startForge('github');
  const { log } = capture();
  for (const bad of [{ repo: '../x' }, { repo: 'a/b/c' }, { pr: 0 }, { sha: 'HEAD' }] as Partial<PreviewNotice>[]) {
    const result = await tellForge(api.target, notice(bad), { log, retry: FAST, commentId: '3' });
    assert.is(result.errors.length, 1, JSON.stringify(bad));
    assert.is(result.commentId, '3');
  }
  assert.is(api.seen.length, 0);
});

test('forgeTargetOf: the repo’s resolved report, or undefined when it reports nowhere', () => {
  const reports = new Map<string, ResolvedReport>([
    ['octo/site', { forge: 'gitea', api: 'https://git.example.com/api/v1/', token: TOKEN }],
  ]);
  assert.equal(forgeTargetOf(reports, 'octo/site'), {
    forge: 'gitea',
    api: 'https://git.example.com/api/v1',
    token: TOKEN,
  });
  assert.is(forgeTargetOf(reports, 'octo/other'), undefined);
});

test('previewComment: each state, the short head, the marker', () => {
  const live = previewComment(
    record({ state: 'live', url: 'https://pr-42.preview.example.com/', live: { sha: SHA, port: 4100 } }),
  );
  assert.ok(live.startsWith(COMMENT_MARKER));
  assert.match(live, /is live at https:\/\/pr-42\.preview\.example\.com\//);
  assert.match(live, /`abcdef0`/);
  assert.not.match(live, SHA);

  const waiting = previewComment(record({ state: 'waiting for approval' }));
  assert.match(
    waiting,
    /run `shipkit previews approve octo\/site#42` on the preview machine, or add the label `preview`/,
  );

  const failed = previewComment(record({ state: 'failed', reason: 'npm ci exited with 1' }), {
    logUrl: 'https://ci.example.com/jobs/7/log',
  });
  assert.match(
    failed,
    /failed at `abcdef0`: npm ci exited with 1\. See \[the build log\]\(<https:\/\/ci\.example\.com\/jobs\/7\/log>\)/,
  );
  assert.not.match(previewComment(record({ state: 'failed' }), { logUrl: 'javascript:alert(1)' }), /javascript/);

  const torn = previewComment(
    record({ state: 'torn down', reason: 'pushed out by max: 10, the oldest idle preview goes first' }),
  );
  assert.match(torn, /was torn down: pushed out by max: 10, the oldest idle preview goes first\./);
  assert.match(previewComment(record()), /is building `abcdef0`/);
});

test('a hostile title and branch are inert in the comment', () => {
  const hostile =
    '../../etc; rm -rf /\nnew line \x1b[31mred\x1b[0m @everyone <script>alert(1)</script> [x](https://evil) `code` ' +
    '#1 Größe 🚀 \u202eevil\u2028' +
    'y'.repeat(400);
  const body = previewComment(
    record({ title: hostile, headRef: '`ref`<b>@admin', fromFork: true, headRepo: 'mal/[fork]' }),
  );
  const lines = body.split('\n');
  assert.is(lines.length, 5, 'the title adds no line');
  assert.not.match(body, /<script|<b>/);
  assert.not.match(body, /@everyone|@admin/);
  assert.not.match(body, /\x1b|\u202e|\u2028/);
  assert.not.match(body, /\]\(https/);
  assert.not.match(body, /(?<!\\)\[x/);
  assert.not.match(body, /(?<!\\)`code/);
  assert.match(body, /Größe 🚀/);
  assert.match(body, /\.\.\/\.\.\/etc; rm -rf \//, 'plain punctuation is kept as it is');
  const title = inertMarkdown(hostile);
  assert.ok(title.endsWith('y…'));
  assert.ok(Array.from(hostile).length > MAX_SENDER_TEXT);
  const shown = title
    .replace(/&#8203;/g, '')
    .replace(/&lt;|&gt;|&amp;/g, '_')
    .replace(/\\(.)/g, '$1');
  assert.is(Array.from(shown).length, MAX_SENDER_TEXT, 'cut to MAX_SENDER_TEXT characters as shown');
});

test.run();
