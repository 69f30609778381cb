// The status page's Fleet section (lib/web/fleet-section.ts): counts per version and result, the
// rollout's step, failures with reasons for signed-in viewers only, and every host-sent string
// escaped with its bidi controls shown.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FAILURES_SHOWN, renderFleetSection } from '../../../lib/web/fleet-section.ts';
import type { FleetView } from '../../../lib/web/read-sources.ts';

const view = (fields: Partial<FleetView> = {}): FleetView => ({
  app: 'web',
  hosts: 3,
  tally: [
    { version: '1.0', result: 'running', hosts: 1 },
    { version: '1.1', result: 'rolled_back', hosts: 1 },
    { version: '1.1', result: 'updated', hosts: 1 },
  ],
  rollout: {
    version: '1.1',
    step: 2,
    steps: [1, 10, 100],
    percent: 10,
    state: 'halted',
    reason: 'failures: 1 of 2, allowed 0',
    at: '2026-11-23T10:00:00Z',
  },
  failures: [
    {
      host: 'a'.repeat(32),
      version: '1.1',
      result: 'rolled_back',
      reason: 'health check /healthz answered 500',
      at: Date.parse('2026-11-23T10:00:01Z'),
    },
  ],
  liars: 0,
  ...fields,
});

test('no fleet: no section', () => {
  assert.is(renderFleetSection(undefined, true), '');
  assert.is(renderFleetSection([], true), '');
});

test('an app: hosts, the rollout step and state, hosts per version and result, failures with reasons', () => {
  const html = renderFleetSection([view()], true);
  assert.match(html, '<h2>Fleet</h2>');
  assert.match(html, '(3 hosts)');
  assert.match(html, 'step 2 of 3 (10 %)');
  assert.match(html, 'state-halted');
  assert.match(html, 'failures: 1 of 2, allowed 0');
  assert.match(html, '<tr><td><bdi>1.1</bdi></td><td>rolled back</td><td>1</td></tr>');
  assert.match(html, 'health check /healthz answered 500');
  assert.match(html, '2026-11-23 10:00:01 UTC');
  assert.match(
    html,
    '(<time datetime="2026-11-23T10:00:00.000Z">2026-11-23 10:00:00 UTC</time>)',
    'the rollout time as the page shows times',
  );
});

test('reasons are for signed-in viewers: others see how many failed', () => {
  const html = renderFleetSection([view()], false);
  assert.not.match(html, 'healthz');
  assert.match(html, '1 failure; log in to see the reasons.');
});

test('host-sent strings are escaped and bidi controls shown', () => {
  const html = renderFleetSection(
    [
      view({
        tally: [{ version: '<img src=x>', result: 'updated', hosts: 1 }],
        failures: [
          {
            host: 'b'.repeat(32),
            version: '1.1',
            result: 'failed',
            reason: '<script>alert(1)</script>\u202Egnp.exe',
            at: 0,
          },
        ],
        rollout: { version: '1.1', step: 1, steps: [1], percent: 1, state: 'running', reason: '<b>x</b>', at: '"><i>' },
      }),
    ],
    true,
  );
  assert.not.match(html, '<script>');
  assert.not.match(html, '<img');
  assert.not.match(html, '<b>x');
  assert.not.match(html, '"><i>');
  assert.not.match(html, '\u202E');
  assert.match(html, '&lt;script&gt;');
});

test('at most FAILURES_SHOWN failures are listed, the rest counted; liars are named', () => {
  const failures = Array.from({ length: FAILURES_SHOWN + 5 }, (_, i) => ({
    host: i.toString(16).padStart(32, '0'),
    version: '1.1',
    result: 'failed',
    reason: `r${i}`,
    at: i,
  }));
  const html = renderFleetSection([view({ failures, liars: 2 })], true);
  assert.is(html.split('<tr><td><code>').length - 1, FAILURES_SHOWN);
  assert.match(html, 'and 5 more.');
  assert.match(html, '2 hosts reported a bucket that is not the one their id gives.');
});

test.run();
