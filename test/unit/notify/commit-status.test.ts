// Commit statuses (lib/notify/commit-status.ts): what a job's start and end say, when none is due
// (a superseded job that never ran), each forge's spelling, path, headers and body, and the hint
// for a refusal that names what to fix without the token.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  endStatus,
  forgeState,
  MAX_DESCRIPTION,
  refusalHint,
  startStatus,
  statusRequest,
  type StatusJob,
} from '../../../lib/notify/commit-status.ts';

const SHA = 'a'.repeat(40);
const job = (over: Partial<StatusJob> = {}): StatusJob => ({
  id: 'j1',
  seq: 1,
  repo: 'octo/site',
  kind: 'build',
  branch: 'main',
  sha: SHA,
  ref: 'refs/heads/main',
  tag: null,
  state: 'succeeded',
  exit: 0,
  reason: null,
  started: '2026-11-24T10:00:00Z',
  finished: '2026-11-24T10:00:42Z',
  attempts: 1,
  ...over,
});

test('start: pending under shipkit/build or shipkit/release', () => {
  assert.equal(startStatus(job()), { state: 'pending', context: 'shipkit/build', description: 'build running' });
  assert.is(startStatus(job({ kind: 'release' })).context, 'shipkit/release');
});

test('end: success with its time; failure with the exit; error when shipkit stopped it', () => {
  assert.equal(endStatus(job()), {
    state: 'success',
    context: 'shipkit/build',
    description: 'build succeeded in 42 s',
  });
  assert.is(
    endStatus(job({ state: 'failed', exit: 2, reason: 'exited with 2' }))!.description,
    'build failed (exit 2) in 42 s',
  );
  assert.equal(endStatus(job({ state: 'failed', exit: null, reason: 'timed out after 900 s' }))!.state, 'error');
  assert.match(endStatus(job({ state: 'failed', reason: 'output over 64 MiB' }))!.description, /stopped by shipkit/);
  assert.is(endStatus(job({ state: 'interrupted' }))!.state, 'error');
});

test('a build that found its tree built already says "up to date", not "succeeded"', () => {
  const reason = 'up-to-date: tree 0123456789ab (commit aaaaaaaaaaaa) was built by job j0; nothing to build';
  assert.equal(endStatus(job({ reason })), {
    state: 'success',
    context: 'shipkit/build',
    description: 'build up to date: this tree was built already',
  });
});

test('a superseded job: cancelled when it ran, no status at all when it never did', () => {
  assert.is(endStatus(job({ state: 'superseded', attempts: 1 }))!.state, 'cancelled');
  assert.is(endStatus(job({ state: 'superseded', attempts: 0 })), undefined);
  assert.is(endStatus(job({ state: 'queued' })), undefined);
});

test('descriptions are capped at the forge limit', () => {
  const long = endStatus(job({ state: 'failed', reason: 'exited with 1', kind: 'x'.repeat(300) }))!;
  assert.is(long.description.length, MAX_DESCRIPTION);
  assert.ok(long.description.endsWith('…'));
});

test("each forge's spelling of the states", () => {
  assert.is(forgeState('github', 'cancelled'), 'error');
  assert.is(forgeState('gitea', 'cancelled'), 'error');
  assert.is(forgeState('gitlab', 'cancelled'), 'canceled');
  assert.is(forgeState('gitlab', 'pending'), 'running');
  assert.is(forgeState('gitlab', 'failure'), 'failed');
});

test('the request: GitHub, Gitea and GitLab paths, headers and bodies; names encoded', () => {
  const status = endStatus(job())!;
  const gh = statusRequest(
    { forge: 'github', token: 'T', api: 'https://api.github.com' },
    'octo/site',
    SHA,
    status,
    'https://ci/jobs/j1',
  );
  assert.is(gh.url.href, `https://api.github.com/repos/octo/site/statuses/${SHA}`);
  assert.is(gh.headers.Authorization, 'Bearer T');
  assert.equal(JSON.parse(gh.body), {
    state: 'success',
    target_url: 'https://ci/jobs/j1',
    description: 'build succeeded in 42 s',
    context: 'shipkit/build',
  });
  const gitea = statusRequest(
    { forge: 'gitea', token: 'T', api: 'https://git.example/api/v1' },
    'octo/site',
    SHA,
    status,
  );
  assert.is(gitea.headers.Authorization, 'token T');
  assert.not.ok('target_url' in JSON.parse(gitea.body));
  const gl = statusRequest(
    { forge: 'gitlab', token: 'T', api: 'https://gitlab.example/api/v4' },
    'group/sub/site',
    SHA,
    status,
  );
  assert.is(gl.url.href, `https://gitlab.example/api/v4/projects/group%2Fsub%2Fsite/statuses/${SHA}`);
  assert.is(gl.headers['PRIVATE-TOKEN'], 'T');
  assert.is(JSON.parse(gl.body).name, 'shipkit/build');
});

test('refusal hints say what to fix and never hold the token', () => {
  assert.match(refusalHint(401, 'octo/site', 'x'), /report_token was refused/);
  assert.match(refusalHint(403, 'octo/site', 'x'), /may not set statuses on octo\/site/);
  assert.match(refusalHint(404, 'octo/site', 'x'), /cannot see octo\/site/);
  assert.is(refusalHint(500, 'octo/site', 'server said no'), 'server said no');
  assert.is(refusalHint(undefined, 'octo/site', 'ECONNREFUSED'), 'ECONNREFUSED');
});

test.run();
