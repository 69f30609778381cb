// @deno
// The status page's Environments section: a table per app with each environment's release
// (ROLLOUT below 100, SEQ), its window now, and the release that waits with N of M approvals; uids,
// refusals, errors and the approve command for signed-in viewers; every text escaped.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { approveCommand, renderEnvironmentsSection } from '../../../lib/web/environments-section.ts';
import type { EnvironmentsView, EnvironmentView } from '../../../lib/web/read-sources.ts';
import { renderStatusPage } from '../../../lib/web/status-page.ts';

const HOSTILE = '<script>alert(1)</script>"\u202e';
const ESCAPED = '&lt;script&gt;alert(1)&lt;/script&gt;&quot;&lt;U+202E&gt;';

function environment(name: string, more: Partial<EnvironmentView> = {}): EnvironmentView {
  return {
    name,
    to: `/srv/updates/${name}`,
    from: null,
    current: { version: '1.3', rollout: 100, seq: 7 },
    error: null,
    window: { open: true, reason: null, until: null },
    approvals: null,
    waits: null,
    ...more,
  };
}

const production = (more: Partial<EnvironmentView> = {}) =>
  environment('production', {
    from: 'staging',
    current: { version: '1.3', rollout: 25, seq: 9 },
    window: {
      open: false,
      reason: 'deny window "Fri 15:00 - Mon 08:00" (Europe/Berlin)',
      until: '2026-11-23T07:00:00Z',
    },
    approvals: 2,
    waits: {
      version: '1.4',
      sha256: 'e'.repeat(64),
      from: 'staging',
      required: 2,
      approved: ['Bob <bob@example.com>'],
      awaited: ['Alice <alice@example.com>'],
      refused: ["alice's approval expired at 2026-11-19T10:00:00.000Z."],
      users: ['carol'],
      error: null,
    },
    ...more,
  });

const SIGNED_IN = { signedIn: true };
const ANONYMOUS = { signedIn: false };

const view = (environments: EnvironmentView[], app = 'my-app'): EnvironmentsView => ({
  read: '2026-11-20T13:00:00.000Z',
  apps: [{ app, environments }],
});

test('no apps: no section', () => {
  assert.is(renderEnvironmentsSection(undefined, SIGNED_IN), '');
  assert.is(renderEnvironmentsSection({ read: '2026-11-20T13:00:00.000Z', apps: [] }, SIGNED_IN), '');
});

test('a row per environment: release with SEQ, ROLLOUT only below 100, the window now', () => {
  const html = renderEnvironmentsSection(
    view([environment('staging', { current: { version: '1.4', rollout: 100, seq: 12 } }), production()]),
    SIGNED_IN,
  );
  assert.match(html, '<h2>Environments</h2>');
  assert.match(html, '<h3><bdi>my-app</bdi></h3>');
  assert.match(
    html,
    '<td><bdi>staging</bdi></td><td><strong><bdi>1.4</bdi></strong> <span class="muted">SEQ 12</span></td>',
  );
  assert.match(html, '<td><span class="state state-succeeded">open</span></td>');
  assert.match(
    html,
    '<strong><bdi>1.3</bdi></strong> <span class="state state-running">ROLLOUT 25 %</span> <span class="muted">SEQ 9</span>',
  );
  assert.is(html.match(/ROLLOUT/g)?.length, 1, 'a full rollout says no ROLLOUT');
  assert.match(
    html,
    '<span class="state state-queued">closed</span>: <bdi>deny window &quot;Fri 15:00 - Mon 08:00&quot; (Europe/Berlin)</bdi> until <time datetime="2026-11-23T07:00:00.000Z">2026-11-23 07:00:00 UTC</time>',
  );
  assert.match(html, 'Read from each DEST at <time datetime="2026-11-20T13:00:00.000Z">');
});

test('the waits line: N of M approvals, who approved, who is awaited, refusals, the command', () => {
  const html = renderEnvironmentsSection(view([production()]), SIGNED_IN);
  assert.match(
    html,
    '<strong><bdi>1.4</bdi></strong> from <bdi>staging</bdi>: <span class="state state-queued">1 of 2 approvals</span>',
  );
  assert.match(html, 'approved by <bdi>Bob &lt;bob@example.com&gt;</bdi>');
  assert.match(html, 'awaited: <bdi>Alice &lt;alice@example.com&gt;</bdi>');
  assert.match(html, 'refused: <bdi>alice&#39;s approval expired at 2026-11-19T10:00:00.000Z.</bdi>');
  assert.match(html, '<code><bdi>shipkit approve my-app 1.4 --env production --key KEY</bdi></code>');
  assert.is(approveCommand('my-app', '1.4', 'production'), 'shipkit approve my-app 1.4 --env production --key KEY');
});

test('enough approvals: counted as done, no command; nothing waiting; no approvals asked', () => {
  const done = production();
  done.waits = { ...done.waits!, approved: ['Bob', 'Carol'], awaited: [], refused: [] };
  const html = renderEnvironmentsSection(view([done]), SIGNED_IN);
  assert.match(html, '<span class="state state-succeeded">2 of 2 approvals</span>');
  assert.not.match(html, 'shipkit approve');
  assert.match(
    renderEnvironmentsSection(view([production({ waits: null })]), SIGNED_IN),
    '<span class="muted">nothing waits</span>',
  );
  assert.match(renderEnvironmentsSection(view([environment('staging')]), SIGNED_IN), '<td class="message"></td>');
});

test('a DEST that cannot be read and approvals that cannot be counted: the reason for signed-in viewers', () => {
  const broken = environment('staging', { current: null, error: 'no answer for VERSION at s3://b/p within 5 s' });
  const uncounted = production();
  uncounted.waits = { ...uncounted.waits!, error: "Cannot read the approver's key /k/alice.asc (ENOENT)." };
  const signedIn = renderEnvironmentsSection(view([broken, uncounted]), SIGNED_IN);
  assert.match(signedIn, 'cannot be read</span>: <bdi>no answer for VERSION at s3://b/p within 5 s</bdi>');
  assert.match(
    signedIn,
    'approvals not counted</span>: <bdi>Cannot read the approver&#39;s key /k/alice.asc (ENOENT).</bdi>',
  );
  const anonymous = renderEnvironmentsSection(view([broken, uncounted]), ANONYMOUS);
  assert.match(anonymous, 'cannot be read</span>');
  assert.not.match(anonymous, 's3://');
  assert.not.match(anonymous, 'alice.asc');
  assert.match(
    renderEnvironmentsSection(view([environment('staging', { current: null })]), SIGNED_IN),
    '<span class="muted">nothing published</span>',
  );
});

test('anonymous viewers (ui: public) see the count, not the uids, refusals or the command', () => {
  const html = renderEnvironmentsSection(view([production()]), ANONYMOUS);
  assert.match(html, '1 of 2 approvals');
  assert.not.match(html, 'bob@example.com');
  assert.not.match(html, 'alice@example.com');
  assert.not.match(html, 'refused');
  assert.not.match(html, 'shipkit approve');
});

test('hostile app, environment, version, uid, reason and error text is escaped, bidi controls shown', () => {
  const hostile = production({
    name: HOSTILE,
    current: { version: HOSTILE, rollout: 100, seq: null },
    window: { open: false, reason: HOSTILE, until: HOSTILE },
  });
  hostile.waits = {
    ...hostile.waits!,
    version: HOSTILE,
    from: HOSTILE,
    approved: [HOSTILE],
    awaited: [HOSTILE],
    refused: [HOSTILE],
  };
  const broken = environment(HOSTILE, { current: null, error: HOSTILE });
  const html = renderEnvironmentsSection(view([hostile, broken], HOSTILE), SIGNED_IN);
  assert.not.match(html, '<script>');
  assert.not.match(html, /[\u202a-\u202e\u2066-\u2069]/);
  assert.not.match(html, '"\u202e');
  const count = html.split(ESCAPED).length - 1;
  // app, 2 names, version, reason, until, waits version and from, approved, awaited, refused, the command, the error
  assert.ok(count >= 12, `every hostile text escaped (${count})`);
});

test('the status page shows the section for all repos, not for one', () => {
  const viewer = { signedIn: true, canSignIn: true, now: new Date('2026-11-20T13:00:00Z') };
  const input = { jobs: [], repos: ['octo/site'], page: 1, viewer, environments: view([production()]) };
  assert.match(renderStatusPage(input), '<h2>Environments</h2>');
  assert.not.match(renderStatusPage({ ...input, repo: 'octo/site' }), '<h2>Environments</h2>');
  assert.not.match(renderStatusPage({ ...input, environments: undefined }), '<h2>Environments</h2>');
});

test("an approver's Approve button: the release as shown and the session's CSRF token, for users of from: only", () => {
  const carol = { signedIn: true, user: { name: 'carol', csrf: 'C'.repeat(43) } };
  const html = renderEnvironmentsSection(view([production()]), carol, '/ci');
  assert.match(html, '<form class="approve" method="post" action="/ci/approve">');
  for (const [name, value] of [
    ['app', 'my-app'],
    ['env', 'production'],
    ['version', '1.4'],
    ['sha256', 'e'.repeat(64)],
    ['csrf', 'C'.repeat(43)],
  ])
    assert.match(html, `<input type="hidden" name="${name}" value="${value}">`);
  assert.match(html, '<button type="submit">Approve <bdi>1.4</bdi> for <bdi>production</bdi></button>');
  const dave = { signedIn: true, user: { name: 'dave', csrf: 'D'.repeat(43) } };
  assert.not.match(renderEnvironmentsSection(view([production()]), dave), '<form', 'dave is not in from:');
  assert.not.match(renderEnvironmentsSection(view([production()]), SIGNED_IN), '<form', 'the token names nobody');
  const noSha = production();
  noSha.waits = { ...noSha.waits!, sha256: null };
  assert.not.match(renderEnvironmentsSection(view([noSha]), carol), '<form', 'nothing to bind it to');
});

test.run();
