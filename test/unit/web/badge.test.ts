// Badges (lib/web/badge.ts): the state a branch's jobs give, the SVG (well-formed, escaped, one
// colour per state), and If-None-Match matching.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  BADGE_STATES,
  badgeRepo,
  badgeState,
  entityTag,
  matchesEtag,
  renderBadge,
  type BadgeJob,
} from '../../../lib/web/badge.ts';

/** Tags balance, attributes are quoted, and text holds no raw `<`, `>` or bare `&`: true, else what is wrong. */
function checkWellFormed(svg: string): true | string {
  const stack: string[] = [];
  const token = /<(\/?)([a-zA-Z][\w-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|([^<]+)/gy;
  let m: RegExpExecArray | null;
  let at = 0;
  while (at < svg.length && (m = token.exec(svg))) {
    at = token.lastIndex;
    if (m[5] !== undefined) {
      if (/[>]|&(?!(amp|lt|gt|quot|#39);)/.test(m[5])) return `bad text ${m[5]}`;
      if (m[5].trim() && stack.length === 0) return 'text outside the root';
    } else if (m[1]) {
      if (stack.pop() !== m[2]) return `unbalanced </${m[2]}>`;
    } else if (!m[4]) stack.push(m[2]);
    else if (/&(?!(amp|lt|gt|quot|#39);)/.test(m[3])) return `bad attribute ${m[3]}`;
  }
  if (at !== svg.length) return `cannot parse at ${svg.slice(at, at + 30)}`;
  return stack.length === 0 ? true : `unclosed ${stack.join(', ')}`;
}

let seq = 0;
const job = (state: string, fields: Partial<BadgeJob> = {}): BadgeJob => ({
  repo: 'octo/site',
  kind: 'build',
  branch: 'main',
  state,
  seq: ++seq,
  ...fields,
});

test('the newest build of the branch decides; superseded and interrupted ones are passed over', () => {
  const cases: Array<[string, BadgeJob[], string]> = [
    ['no jobs', [], 'unknown'],
    ['succeeded', [job('succeeded')], 'passing'],
    ['failed', [job('failed')], 'failing'],
    ['running', [job('succeeded'), job('running')], 'running'],
    ['queued', [job('failed'), job('queued')], 'running'],
    ['newest wins', [job('failed'), job('succeeded')], 'passing'],
    ['newest wins, other order', [job('failed'), job('succeeded')].reverse(), 'passing'],
    ['superseded passed over', [job('failed'), job('superseded')], 'failing'],
    ['interrupted passed over', [job('succeeded'), job('interrupted')], 'passing'],
    ['other branch ignored', [job('failed'), job('succeeded', { branch: 'dev' })], 'failing'],
    ['other repo ignored', [job('succeeded'), job('failed', { repo: 'octo/other' })], 'passing'],
    ['release jobs ignored', [job('succeeded'), job('failed', { kind: 'release', branch: null })], 'passing'],
  ];
  for (const [name, jobs, want] of cases) assert.is(badgeState(jobs, 'octo/site', 'main'), want, name);
});

test('each state renders well-formed SVG with its own words and colour', () => {
  const colours = new Set<string>();
  for (const state of BADGE_STATES) {
    const svg = renderBadge(state);
    assert.is(checkWellFormed(svg), true, state);
    assert.match(svg, `>${state}</text>`);
    assert.match(svg, `aria-label="build: ${state}"`);
    colours.add(/fill="(#[0-9a-f]{3,6})"\/><rect width/.exec(svg)![1]);
  }
  assert.is(colours.size, 4);
});

test('text is escaped in the SVG', () => {
  const svg = renderBadge('passing', '<script>alert("x")</script>&\'');
  assert.is(checkWellFormed(svg), true);
  assert.not.match(svg, '<script>');
  assert.match(svg, '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;');
});

test('badge paths, ETags and If-None-Match', () => {
  assert.is(badgeRepo('/badge/octo/site.svg'), 'octo/site');
  assert.is(badgeRepo('/badge/group/sub/app.svg'), 'group/sub/app');
  assert.is(badgeRepo('/badge/octo/%2e%2e.svg'), 'octo/..');
  assert.is(badgeRepo('/badge/octo/%E0%A4%A.svg'), '');
  assert.is(badgeRepo('/badge/octo/site.png'), undefined);
  const etag = entityTag(renderBadge('passing'));
  assert.match(etag, /^"[A-Za-z0-9_-]{22}"$/);
  assert.is.not(etag, entityTag(renderBadge('failing')));
  assert.ok(matchesEtag(etag, etag));
  assert.ok(matchesEtag(`"other", W/${etag}`, etag));
  assert.ok(matchesEtag('*', etag));
  assert.not.ok(matchesEtag(undefined, etag));
  assert.not.ok(matchesEtag('"other"', etag));
});

test.run();
