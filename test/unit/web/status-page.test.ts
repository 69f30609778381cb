// The status page's HTML from jobs with hostile payload text: escaped everywhere it appears,
// bidi controls made visible and isolated; pagination bounded; the failing step first; under a
// public_url: path, every URL in the pages carries it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Job } from '../../../lib/jobs/job.ts';
import { parseLogSteps, stepsFailingFirst } from '../../../lib/web/job-steps.ts';
import { basePath } from '../../../lib/jobs/job-url.ts';
import {
  formatDuration,
  lastStates,
  LOG_SHOWN_BYTES,
  renderJobPage,
  renderLoginPage,
  renderNotice,
  renderStatusPage,
  type Viewer,
} from '../../../lib/web/status-page.ts';

const HOSTILE = `<script>alert(1)</script> "'</textarea><img src=x onerror=alert(2)> \u202Egnp.exe\u2066x\u2069`;
const now = new Date('2026-11-22T12:00:00Z');
const viewer: Viewer = { signedIn: true, canSignIn: true, now };

function job(seq: number, over: Partial<Job> = {}): Job {
  return {
    id: `20261122-1100${String(seq).padStart(2, '0')}-${String(seq).padStart(4, '0')}`,
    seq,
    repo: 'octo/site',
    kind: 'build',
    sha: 'a'.repeat(40),
    ref: 'refs/heads/main',
    branch: 'main',
    tag: null,
    cloneUrl: null,
    deliveryId: `d${seq}`,
    forge: 'github',
    state: 'succeeded',
    exit: 0,
    queued: '2026-11-22T11:00:00.000Z',
    started: '2026-11-22T11:00:01.000Z',
    finished: '2026-11-22T11:01:05.000Z',
    reason: null,
    attempts: 1,
    interruptions: 0,
    pgid: null,
    ...over,
  };
}

/** No raw markup or bidi control from HOSTILE survives anywhere in the page. */
function assertNeutralised(html: string) {
  assert.not.match(html, '<script>alert');
  assert.not.match(html, '<img src=x');
  assert.not.match(html, '</textarea>');
  assert.not.match(html, /[\u202a-\u202e\u2066-\u2069]/, 'no raw bidi control');
  assert.match(html, '&lt;script&gt;alert(1)&lt;/script&gt;');
  assert.match(html, '&quot;&#39;&lt;/textarea&gt;');
}

test('list: hostile message, author, pusher, branch are escaped, bidi shown and isolated', () => {
  const hostile = job(1, {
    message: `${HOSTILE}\nsecond line`,
    author: HOSTILE,
    pusher: HOSTILE,
    branch: HOSTILE,
    commitUrl: 'https://github.com/o/s/commit/a"b',
  });
  const html = renderStatusPage({ jobs: [hostile], repos: ['octo/site'], page: 1, viewer });
  assertNeutralised(html);
  assert.match(html, '<bdi>&lt;script&gt;');
  assert.match(html, '<span class="ctl">&lt;U+202E&gt;</span>gnp.exe');
  assert.not.match(html, 'second line', 'only the first line of the message in the list');
  assert.match(html, 'href="https://github.com/o/s/commit/a&quot;b"');
});

test('job page: fields, title, log and step names escaped', () => {
  const hostile = job(2, {
    state: 'failed',
    exit: 1,
    message: HOSTILE,
    author: HOSTILE,
    pusher: HOSTILE,
    branch: HOSTILE,
    reason: HOSTILE,
  });
  const log = `=== shipkit job ${hostile.id} start {}\n11:00:01.000 --- step pull\n11:00:01.100 | ${HOSTILE}\n11:00:02.000 !!! step pull failed after 1.0 s: ${HOSTILE}\n`;
  const html = renderJobPage({
    job: hostile,
    viewer,
    log,
    deliveries: [{ what: HOSTILE, outcome: 'failed', attempts: 3, detail: HOSTILE, at: now.toISOString() }],
  });
  assertNeutralised(html);
  const title = /<title>([^<]*)<\/title>/.exec(html)?.[1] ?? '';
  assert.match(title, '&lt;script&gt;alert(1)&lt;/script&gt;', 'the message first line in the title, escaped');
  assert.match(title, '&lt;U+202E&gt;gnp.exe', 'bidi visible in the title');
  assert.match(html, 'Failed at step <strong><bdi>pull</bdi></strong> after 1.0 s');
  const commit = /<dt>Commit<\/dt><dd>(.*?)<\/dd>/.exec(html)?.[1] ?? '';
  assert.is(commit.match(/class="sha"/g)?.length, 1, `the hash once, not short and full side by side: ${commit}`);
  assert.match(commit, hostile.sha!);
});

test('job page without a session: no log, no steps, a login link; public without token: no link', () => {
  const html = renderJobPage({
    job: job(3, { state: 'failed' }),
    viewer: { ...viewer, signedIn: false },
    log: undefined,
    deliveries: [],
  });
  assert.match(html, 'Logs are shown to signed-in users only.');
  assert.match(html, '/login?next=%2Fjobs%2F');
  assert.not.match(html, '<h2>Steps</h2>');
  assert.not.match(
    renderJobPage({ job: job(3), viewer: { ...viewer, signedIn: false, canSignIn: false }, deliveries: [] }),
    '/login',
  );
});

test('running job: the live log mount point and a reload link, the script only when given', () => {
  const running = job(4, { state: 'running', finished: null, exit: null });
  const html = renderJobPage({
    job: running,
    viewer,
    log: '11:00:01.000 --- step pull\n',
    deliveries: [],
    scripts: ['log-follow.js'],
  });
  assert.match(html, `<div id="log" data-follow="/jobs/${running.id}/log?follow=1">`);
  assert.match(html, `<a href="/jobs/${running.id}">reload</a>`);
  assert.match(html, '<script src="/assets/log-follow.js" defer></script>');
  assert.match(html, '59 min 59 s so far');
  assert.not.match(
    renderJobPage({ job: job(5), viewer, log: '', deliveries: [], scripts: ['log-follow.js'] }),
    '<script',
    'no script for a finished job',
  );
});

test('pagination: 50 rows of 1,000, newest first, next/prev links, repo filter kept in the links', () => {
  const jobs = Array.from({ length: 1000 }, (_, i) => job(i + 1, { repo: i % 2 ? 'octo/a' : 'octo/b' }));
  const first = renderStatusPage({ jobs, repos: ['octo/a', 'octo/b'], page: 1, viewer });
  assert.is(first.match(/<tr class="job">/g)?.length, 50);
  assert.match(first, 'rel="next" href="/?page=2"');
  assert.not.match(first, 'rel="prev"');
  assert.match(first, 'page 1 of 20 (1000 jobs)');
  const rows = [...first.matchAll(/href="\/jobs\/([^"]+)"><span class="state/g)].map((m) => m[1]);
  assert.is(rows[2], job(1000).id, 'newest first (after the two repo summary rows)');
  const last = renderStatusPage({ jobs, repos: ['octo/a', 'octo/b'], page: 99, viewer });
  assert.match(last, 'page 20 of 20');
  assert.not.match(last, 'rel="next"');
  const filtered = renderStatusPage({ jobs, repos: ['octo/a', 'octo/b'], repo: 'octo/a', page: 2, viewer });
  assert.is(filtered.match(/<tr class="job">/g)?.length, 50);
  assert.match(filtered, 'rel="next" href="/?repo=octo%2Fa&amp;page=3"');
  assert.match(filtered, 'rel="prev" href="/?repo=octo%2Fa"');
  assert.not.match(filtered.split('<table class="jobs">')[1], '<bdi>octo/b</bdi>');
});

test('lastStates: newest per branch and release, superseded skipped, repos without jobs listed', () => {
  const states = lastStates(
    [
      job(1, { state: 'failed' }),
      job(2, { state: 'succeeded' }),
      job(3, { state: 'superseded' }),
      job(4, { branch: 'dev', state: 'running' }),
      job(5, { kind: 'release', tag: 'v1', branch: null }),
    ],
    ['octo/site', 'octo/none'],
  );
  assert.equal(
    states.get('octo/site')!.map((j) => [j.branch ?? j.tag, j.state]),
    [
      ['dev', 'running'],
      ['main', 'succeeded'],
      ['v1', 'succeeded'],
    ],
  );
  assert.equal(states.get('octo/none'), []);
});

test('steps from a build log: outcomes, times, the failing one first; output cannot forge a step line', () => {
  const log = [
    '=== shipkit job X start {}',
    '11:00:00.000 --- step pull',
    '11:00:00.100 | --- step compile ok (0.1 s)',
    '11:00:01.000 --- step pull ok (1.0 s): abc123',
    '11:00:01.000 --- step downloads',
    '11:00:01.000 --- step downloads skipped: none configured',
    '11:00:01.000 --- step compile',
    '11:00:01.500 | error TS2304',
    '11:00:05.250 !!! step compile failed after 4.3 s: exit 2',
    '=== shipkit job X end {}',
  ].join('\n');
  const parsed = parseLogSteps(log);
  assert.equal(
    parsed.steps.map((s) => [s.name, s.outcome, s.seconds, s.detail]),
    [
      ['pull', 'ok', 1, 'abc123'],
      ['downloads', 'skipped', undefined, 'none configured'],
      ['compile', 'failed', 4.3, 'exit 2'],
    ],
  );
  assert.is(parsed.steps[0].lines.length, 3);
  assert.equal(
    stepsFailingFirst(parsed.steps).map((s) => s.name),
    ['compile', 'pull', 'downloads'],
  );
  assert.equal(parsed.before, ['=== shipkit job X start {}']);
  assert.equal(parsed.after, ['=== shipkit job X end {}']);
  assert.is(parseLogSteps('11:00:00.000 --- step pull\n', { running: true }).steps[0].outcome, 'running');
  assert.is(parseLogSteps('11:00:00.000 --- step pull\n').steps[0].outcome, 'unfinished');
});

/** Every URL the page points at or posts to (href, src, form action, the live log's data-follow). */
function urlsIn(html: string): string[] {
  return [...html.matchAll(/\b(?:href|src|action|data-follow)="([^"]*)"/g)].map((m) => m[1]);
}

test('under a base path (public_url: https://ci.example.com/ci): every link, form, asset and follow URL starts with it, nothing else changes', () => {
  const running = job(4, { state: 'running', finished: null, exit: null });
  const jobs = Array.from({ length: 120 }, (_, i) =>
    job(i + 1, { repo: i % 2 ? 'octo/a' : 'octo/b', commitUrl: 'https://github.com/octo/a/commit/aaa' }),
  );
  const failedLog = ['11:00:00.000 --- step compile', '11:00:01.000 !!! step compile failed after 1.0 s: exit 2'].join(
    '\n',
  );
  const pages: Array<(base?: string) => string> = [
    (base) => renderStatusPage({ jobs, repos: ['octo/a', 'octo/b'], page: 2, viewer, base }),
    (base) =>
      renderStatusPage({
        jobs,
        repos: ['octo/a', 'octo/b'],
        repo: 'octo/a',
        page: 1,
        viewer: { ...viewer, signedIn: false },
        base,
      }),
    (base) =>
      renderJobPage({
        job: running,
        viewer,
        log: '11:00:01.000 --- step pull\n',
        deliveries: [],
        scripts: ['log-follow.js'],
        base,
      }),
    (base) =>
      renderJobPage({
        job: job(5, { state: 'failed' }),
        viewer,
        log: `${'x'.repeat(LOG_SHOWN_BYTES)}\n${failedLog}`,
        deliveries: [],
        base,
      }),
    (base) => renderJobPage({ job: job(6), viewer: { ...viewer, signedIn: false }, deliveries: [], base }),
    (base) => renderLoginPage({ next: `/jobs/${job(6).id}`, base }),
    (base) => renderNotice('No such job', 'gone', { base }),
  ];
  const kinds = new Set<string>();
  for (const page of pages) {
    const root = page();
    const based = page('/ci');
    const own = urlsIn(based).filter((u) => !u.startsWith('#') && !u.startsWith('https://github.com/'));
    assert.ok(own.length >= 2, based);
    for (const url of own) {
      assert.ok(url.startsWith('/ci/'), `${url} is not under /ci/`);
      kinds.add(url.replace(/^\/ci\/([a-z-]*).*$/, '$1'));
    }
    // The same page with "/ci" in front of each root-absolute URL: no link left out, nothing else moved.
    assert.is(based, root.replace(/\b(href|src|action|data-follow)="\//g, '$1="/ci/'));
    assert.is(page(''), root, 'an empty base is the root');
  }
  assert.equal([...kinds].sort(), ['', 'assets', 'audit', 'jobs', 'login', 'logout']);
  // The login form's next stays a route: the server puts the base in front when it redirects.
  assert.match(pages[5]('/ci'), `<input type="hidden" name="next" value="/jobs/${job(6).id}">`);
  assert.match(pages[4]('/ci'), `href="/ci/login?next=%2Fjobs%2F${job(6).id}"`);
  assert.match(pages[2]('/ci'), `data-follow="/ci/jobs/${running.id}/log?follow=1"`);
});

test("basePath: public_url:'s path without its trailing slash; nothing at a host's root or without public_url", () => {
  assert.is(basePath(undefined), '');
  assert.is(basePath('https://ci.example.com'), '');
  assert.is(basePath('https://ci.example.com/'), '');
  assert.is(basePath('https://ci.example.com/ci'), '/ci');
  assert.is(basePath('http://127.0.0.1:8080/a/b.c/'), '/a/b.c');
});

test('login page escapes what it is given; durations read as people write them', () => {
  assert.match(renderLoginPage({ error: '<b>x</b>', next: '/"><script>' }), 'value="/&quot;&gt;&lt;script&gt;"');
  assert.equal([0, 999, 1500, 61_000, 3_725_000].map(formatDuration), ['<1 s', '1 s', '2 s', '1 min 1 s', '1 h 2 min']);
});

test.run();
