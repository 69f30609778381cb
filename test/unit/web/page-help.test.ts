// The status page's words for a newcomer (lib/web/page-help.ts): the next step on an empty
// instance, with this server's webhook URLs; the states in words; everything escaped.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { renderFirstSteps, renderStateLegend, renderStateNote, STATE_MEANINGS } from '../../../lib/web/page-help.ts';
import { renderStatusPage, type Viewer } from '../../../lib/web/status-page.ts';

const help = { serverUrl: 'https://ci.example.com/ci', configFile: '/etc/shipkit/shipkit.yml' };
const viewer: Viewer = { signedIn: true, canSignIn: true, now: new Date('2026-01-01T12:00:00Z') };

test("no repositories: add one to the named config, then send a push to this server's hook URLs", () => {
  const html = renderFirstSteps(help, { repos: 0, jobs: 0 });
  assert.match(html, 'Getting started');
  assert.match(html, '1. Add a repository');
  assert.match(html, '<code>/etc/shipkit/shipkit.yml</code>');
  assert.match(html, '2. Send a push');
  for (const forge of ['github', 'gitea', 'gitlab'])
    assert.match(html, `<code>https://ci.example.com/ci/hooks/${forge}</code>`);
  assert.match(html, 'hooks/post-receive-webhook');
  assert.match(html, '<code>git config shipkit.webhook https://ci.example.com/ci/hooks/gitea</code>');
  assert.not.match(html, 'cannot reach');
});

test('repositories but no jobs: only the push; none once there are jobs', () => {
  const html = renderFirstSteps(help, { repos: 2, jobs: 0 });
  assert.not.match(html, 'Add a repository');
  assert.match(html, '<h3>Send a push</h3>');
  assert.is(renderFirstSteps(help, { repos: 2, jobs: 1 }), '');
});

test('an address a forge cannot reach (loopback) says so; an unknown config file names the search', () => {
  const html = renderFirstSteps({ serverUrl: 'http://127.0.0.1:9000' }, { repos: 0, jobs: 0 });
  assert.match(html, 'a forge on another machine cannot reach');
  assert.match(html, 'public_url:');
  assert.match(html, './.shipkit/shipkit.yml');
});

test('a Host header with markup is shown as text', () => {
  const html = renderFirstSteps({ serverUrl: 'http://"><script>x</script>' }, { repos: 1, jobs: 0 });
  assert.not.match(html, '<script>');
  assert.match(html, '&lt;script&gt;');
});

test('every state has words, in the legend and on a job page; a failed job says how to run it again', () => {
  const legend = renderStateLegend((s) => `[${s}]`);
  for (const state of ['queued', 'running', 'succeeded', 'failed', 'superseded', 'interrupted']) {
    assert.ok(
      STATE_MEANINGS.some(([s]) => s === state),
      state,
    );
    assert.match(legend, `<dt>[${state}]</dt>`);
  }
  assert.match(
    renderStateNote('failed'),
    /^<p class="muted">Failed: a step failed .*To run it again, redeliver its webhook/,
  );
  assert.not.match(renderStateNote('succeeded'), 'run it again');
  assert.is(renderStateNote('unknown'), '');
});

test('the status page: Getting started for a signed-in viewer of an empty instance only', () => {
  const empty = renderStatusPage({ jobs: [], repos: [], page: 1, viewer, help });
  assert.match(empty, '<section class="first-steps');
  assert.match(empty, 'No repositories in the config yet: see Getting started above.');
  assert.match(empty, 'What the states and columns mean');
  assert.not.match(
    renderStatusPage({ jobs: [], repos: [], page: 1, viewer: { ...viewer, signedIn: false }, help }),
    'first-steps',
  );
  assert.not.match(renderStatusPage({ jobs: [], repos: [], page: 1, viewer }), 'first-steps');
});

test.run();
