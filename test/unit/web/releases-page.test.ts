// The status page's Releases view (lib/web/releases-page.ts) of a view fleetReleases builds from
// ledger entries and host reports: a row a release with its state, hosts and moves; every text
// from the ledger or a host (versions, authors, notes, sources, the ledger's error) escaped and its
// control characters shown; the pager past 50 releases; no ledger, and a ledger that did not verify.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fleetViewBuilders, sha } from '../../fixtures/fleet-view.ts';
import { fleetReleases } from '../../../lib/release/rollout/fleet-view.ts';
import { RELEASES_SHOWN, renderReleasesPage } from '../../../lib/web/releases-page.ts';

const HOSTILE = `"><script>alert(1)</script><img src=x onerror='a'>&`;
const { entry, host, snapshot, reset } = fleetViewBuilders();
const viewer = { signedIn: true, canSignIn: true, now: new Date('2026-11-26T00:00:00Z') };
/** The page's main part: between the title and the JSON link, where the view's text goes. */
const bodyOf = (page: string) => page.slice(page.indexOf('<h2>Releases of'), page.indexOf('>JSON</a>'));

function story() {
  reset();
  return [
    entry({
      version: '1.0',
      sha256: sha('a'),
      by: `eve\u202e@evil${HOSTILE}`,
      source: { repo: HOSTILE, commit: null, ref: null },
    }),
    entry({
      version: '1.1',
      sha256: sha('b'),
      rollout: 10,
      source: { repo: 'octo/web', ref: 'v1.1', commit: '0123456789abcdef' },
    }),
    entry({ action: 'rollout', version: '1.1', rollout: 50, note: `step 2 ${HOSTILE}` }),
    entry({ action: 'halt', version: '1.1', rollout: 50, note: 'error rate' }),
    entry({ action: 'rollback', version: '1.0', from: '1.1', by: 'ana@ops\u001b[2J' }),
  ];
}

test('a row a release: its state, hosts verified and not, its moves, newest first', () => {
  const hosts = [
    host('a1', '1.0', { sha256: sha('a') }),
    host('a2', '1.0', { sha256: sha('f') }),
    host('a3', '1.1', { sha256: sha('b'), result: 'failed' }),
    host('a4', '1.0'),
  ];
  const page = renderReleasesPage({ view: fleetReleases('web', hosts, snapshot(story())), viewer });
  const body = bodyOf(page);
  const rows = body.split('<tr>').slice(2);
  assert.is(rows.length, 2);
  assert.match(rows[0], /^<td><bdi>1\.1<\/bdi><\/td><td><span class="state state-halted">halted<\/span>/);
  assert.match(rows[0], /<td>1 <span class="muted">\(1 verified, 1 failed\)<\/span><\/td>/);
  assert.match(rows[0], /<bdi>octo\/web v1\.1 0123456789ab<\/bdi>/);
  assert.match(rows[0], /<li>#3 ROLLOUT 50 %: <bdi>step 2 /);
  assert.match(rows[0], /<li>#4 halted at 50 %: <bdi>error rate<\/bdi>/);
  assert.match(rows[1], /^<td><bdi>1\.0<\/bdi><\/td><td><span class="state state-current">current<\/span>/);
  assert.match(
    rows[1],
    /3 <span class="muted">\(1 verified, <strong class="error">1 another digest<\/strong>, 1 not said\)/,
  );
  assert.match(rows[1], /<li>#5 rolled back to it from <bdi>1\.1<\/bdi>/);
  assert.match(rows[1], /<time datetime="2026-11-25T10:00:00\.000Z">2026-11-25 10:00:00 UTC<\/time>/);
  assert.match(body, /<p class="muted">Ledger at <bdi>\/srv\/updates<\/bdi>: 5 entries, signed by a subkey of c?d/);
  assert.match(body, /\(4 hosts reporting\)/);
});

test('hostile names from the ledger and from hosts are escaped, their control characters shown', () => {
  // Versions from hosts are checked when reports come in; the page escapes them all the same.
  const view = fleetReleases('web', [host('b1', '1.0')], snapshot(story()));
  const unlisted = { hosts: 1, verified: 0, mismatched: 0, unknown: 1, results: {} };
  view.unlisted.push({ version: `9.9${HOSTILE}`, ...unlisted }, { version: '1.0\u001b[31m', ...unlisted });
  const page = renderReleasesPage({ view, viewer });
  const body = bodyOf(page);
  assert.not.match(body, /<script|<img|onerror='|\u202e|\u001b/);
  assert.ok(body.includes('&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&#39;a&#39;&gt;&amp;'));
  assert.ok(body.includes('eve\\u202e@evil'), 'a bidi control is shown, not obeyed');
  assert.ok(body.includes('ana@ops\\u001b[2J'));
  assert.match(body, /<h3>Running, not in the ledger<\/h3>/);
  assert.ok(body.includes('<tr><td><bdi>9.9&quot;&gt;&lt;script&gt;'));
  assert.ok(body.includes('<tr><td><bdi>1.0\\u001b[31m</bdi></td><td>1</td></tr>'));
  // The ledger's own error and where it was read are texts too.
  const broken = renderReleasesPage({
    view: fleetReleases('web', [], snapshot([], { error: `entry 3 ${HOSTILE}`, from: `/srv/${HOSTILE}` })),
    viewer,
  });
  assert.not.match(bodyOf(broken), /<script|<img/);
  assert.match(
    bodyOf(broken),
    /<p class="notice error">The ledger at <bdi>\/srv\/&quot;&gt;&lt;script&gt;.*does not verify: <bdi>entry 3 &quot;/,
  );
});

test('no ledger known: hosts only, said so; an app without releases says that', () => {
  const page = renderReleasesPage({ view: fleetReleases('web', [host('c1', '2.0')], undefined), viewer });
  assert.match(page, /No ledger is known for this app/);
  assert.match(page, /The ledger records no release of this app\./);
  assert.match(page, /\(1 host reporting\)/);
  assert.match(page, /<tr><td><bdi>2\.0<\/bdi><\/td><td>1<\/td><\/tr>/);
});

test('past 50 releases: a page of them, with links to newer and older under the base path', () => {
  reset();
  const many = Array.from({ length: 120 }, (_, i) => entry({ version: `1.${i.toString(16)}` }));
  const page = (offset: number) =>
    renderReleasesPage({
      view: fleetReleases('web', [], snapshot(many), { limit: RELEASES_SHOWN, offset }),
      viewer,
      base: '/ci',
    });
  const first = page(0);
  assert.is(bodyOf(first).split('<tr>').length - 2, 50);
  assert.match(first, /<p class="pager">releases 1–50 of 120 · <a href="\/ci\/releases\/web\?page=2">older<\/a><\/p>/);
  assert.match(
    page(50),
    /<a href="\/ci\/releases\/web\?page=1">newer<\/a> · releases 51–100 of 120 · <a href="\/ci\/releases\/web\?page=3">older<\/a>/,
  );
  assert.match(page(100), /<a href="\/ci\/releases\/web\?page=2">newer<\/a> · releases 101–120 of 120<\/p>/);
  assert.match(first, /<a href="\/ci\/fleet\/web\/releases">JSON<\/a>/);
  const few = renderReleasesPage({ view: fleetReleases('web', [], snapshot(many.slice(0, 3))), viewer });
  assert.not.match(few, /class="pager"/);
});

test.run();
