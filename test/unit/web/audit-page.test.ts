// The Audit page: newest first, every field from a request escaped, control characters written
// as \u escapes and bidi controls isolated, under the pages' base path.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { renderAuditPage } from '../../../lib/web/audit-page.ts';
import type { AuditEntry } from '../../../lib/audit/chain.ts';

const entry = (n: number, fields: Partial<AuditEntry> = {}): AuditEntry => ({
  n,
  prev: '0'.repeat(64),
  at: `2026-01-01T00:00:0${n}.000Z`,
  action: 'login',
  actor: `session s${n}`,
  from: '127.0.0.1',
  subject: null,
  detail: null,
  ...fields,
});
const viewer = { signedIn: true, canSignIn: true, now: new Date() };

test('hostile repo, user and reason are shown escaped, never as markup or control characters', () => {
  const html = renderAuditPage({
    entries: [
      entry(1),
      entry(2, {
        action: 'delivery.replay_refused',
        subject: 'octo/<script>alert(1)</script>/..\n\u001b[31m\u202e',
        detail: { user: '"><img src=x>', reason: 'a\nb' },
      }),
    ],
    viewer,
    base: '/ci',
    since: '"><b>',
  });
  assert.not.match(html, '<script>alert');
  assert.not.match(html, '<img');
  assert.not.match(html, /[\u0000-\u0009\u000b-\u001f\u202e]/);
  assert.match(html, 'octo/&lt;script&gt;alert(1)&lt;/script&gt;/..\\u000a\\u001b[31m\\u202e');
  assert.match(html, 'value="&quot;&gt;&lt;b&gt;"');
  assert.match(html, 'action="/ci/audit"');
  assert.ok(html.indexOf('<td class="num">2</td>') < html.indexOf('<td class="num">1</td>'), 'newest first');
});

test('an empty trail says so; the header links the Audit page for a signed-in viewer', () => {
  const html = renderAuditPage({ entries: [], viewer });
  assert.match(html, 'Nothing recorded yet.');
  assert.match(html, '<a href="/audit">Audit</a>');
});

test('an error is shown in the page instead of the entries, escaped, with the Since box kept', () => {
  const html = renderAuditPage({ entries: [entry(1)], viewer, since: 'x<y', error: 'since must be … not "x<y".' });
  assert.match(html, '<p class="notice error"><bdi>since must be … not &quot;x&lt;y&quot;.</bdi></p>');
  assert.match(html, 'value="x&lt;y"');
  assert.not.match(html, '<table class="audit">');
  assert.match(html, '<a href="/audit">Audit</a>', 'the same layout');
});

test.run();
