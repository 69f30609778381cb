// The status page's Previews section: the documented columns, every text escaped, links only to
// http(s), reasons for signed-in viewers, torn-down ones after the open ones and bounded.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { renderPreviewsSection, TORN_DOWN_SHOWN } from '../../../lib/web/previews-section.ts';
import { renderStatusPage } from '../../../lib/web/status-page.ts';
import { previewRecord } from '../../fixtures/previews/api.ts';

const now = new Date('2026-11-20T13:00:00.000Z');

test('nothing to show: no section', () => {
  assert.is(renderPreviewsSection(undefined, now, true), '');
  assert.is(renderPreviewsSection([], now, true), '');
});

test('a row: repo#N and pr-N, state (linked to its job), head in 7, age, the URL as a link', () => {
  const html = renderPreviewsSection([previewRecord('octo/site', 42, { job: 'j-1' })], now, true, '/ci');
  assert.match(html, '<h2>Previews</h2>');
  assert.match(html, '<bdi>octo/site</bdi>#42 <span class="muted"><bdi>pr-42</bdi></span>');
  assert.match(html, '<a href="/ci/jobs/j-1"><span class="state state-succeeded">live</span></a>');
  assert.match(html, '<code><bdi>abcdef1</bdi></code>');
  assert.not.match(html, 'abcdef12');
  assert.match(html, '<time datetime="2026-11-20T10:00:00.000Z" title="2026-11-20 10:00:00 UTC">3 h</time>');
  assert.match(
    html,
    '<a href="https://pr-42.preview.example.com/" rel="noreferrer"><bdi>https://pr-42.preview.example.com/</bdi></a>',
  );
});

test('every text escaped, bidi controls shown; a URL that is not http(s) is no link', () => {
  const html = renderPreviewsSection(
    [
      previewRecord('octo/site', 7, {
        state: 'failed',
        reason: '<script>alert(1)</script>\u202e',
        url: 'javascript:alert(1)',
        head: '<img src=x onerror=alert(1)>',
      }),
      previewRecord('octo/site', 8, { url: 'https://x.example.com/"><script>' }),
    ],
    now,
    true,
  );
  assert.not.match(html, '<script>');
  assert.not.match(html, '<img');
  assert.not.match(html, 'href="javascript:');
  assert.match(html, '&lt;script&gt;alert(1)&lt;/script&gt;&lt;U+202E&gt;');
  assert.match(html, '<td><bdi>javascript:alert(1)</bdi></td>');
  assert.match(html, 'href="https://x.example.com/&quot;&gt;&lt;script&gt;"');
  assert.match(html, '<span class="state state-failed">failed</span>');
});

test('reasons only for signed-in viewers', () => {
  const record = previewRecord('octo/site', 7, { state: 'waiting for approval', reason: 'from a fork: approve it' });
  assert.match(renderPreviewsSection([record], now, true), 'from a fork: approve it');
  assert.not.match(renderPreviewsSection([record], now, false), 'from a fork');
  assert.match(renderPreviewsSection([record], now, false), 'state-queued">waiting for approval<');
});

test('torn-down previews after the open ones, at most TORN_DOWN_SHOWN, the rest counted', () => {
  const torn = Array.from({ length: TORN_DOWN_SHOWN + 3 }, (_, i) =>
    previewRecord('octo/site', 100 + i, { state: 'torn down' }),
  );
  const html = renderPreviewsSection([...torn, previewRecord('octo/site', 1)], now, true);
  assert.ok(html.indexOf('pr-1<') < html.indexOf('pr-100<'), 'the open one first');
  assert.is(html.match(/torn down<\/span>/g)?.length, TORN_DOWN_SHOWN);
  assert.match(html, 'and 3 more torn down');
});

test("renderStatusPage: the section on the page; with ?repo=, that repo's previews only", () => {
  const viewer = { signedIn: true, canSignIn: true, now };
  const previews = [previewRecord('octo/site', 42), previewRecord('octo/docs', 3)];
  const all = renderStatusPage({ jobs: [], repos: ['octo/site', 'octo/docs'], page: 1, viewer, previews });
  assert.match(all, '<h2>Previews</h2>');
  assert.match(all, 'pr-3<');
  const one = renderStatusPage({
    jobs: [],
    repos: ['octo/site', 'octo/docs'],
    repo: 'octo/site',
    page: 1,
    viewer,
    previews,
  });
  assert.match(one, 'pr-42<');
  assert.not.match(one, 'pr-3<');
  assert.not.match(renderStatusPage({ jobs: [], repos: [], page: 1, viewer }), 'Previews');
});

test.run();
