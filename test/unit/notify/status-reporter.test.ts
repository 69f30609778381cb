// Commit statuses (lib/notify/commit-status.ts, status-reporter.ts) against loopback APIs that
// check each request's documented shape (test/fixtures/forge-status.ts): what each job state
// becomes on each forge, the order of one job's statuses, Retry-After within its cap, superseded
// and release jobs. The fixture's checker is itself shown to catch a wrong request.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createLogger } from '../../../lib/core/log.ts';
import { endStatus, statusRequest, type StatusJob } from '../../../lib/notify/commit-status.ts';
import { retryAfterOf } from '../../../lib/notify/deliver.ts';
import { createDeliveryOutcomes } from '../../../lib/notify/outcomes.ts';
import type { ResolvedReport } from '../../../lib/config/report.ts';
import { createStatusReporter } from '../../../lib/notify/status-reporter.ts';
import {
  giteaStatusOperation,
  githubStatusOperation,
  gitlabStatusOperation,
  requestProblems,
  startStatusApi,
} from '../../fixtures/forge-status.ts';
import { waitFor } from '../../_helpers/common.ts';

const TOKEN = 'tok-123456';
const apis: Array<() => Promise<void>> = [];
test.after.each(async () => {
  await Promise.all(apis.splice(0).map((close) => close()));
});

let seq = 0;
function job(state: string, fields: Partial<StatusJob> = {}): StatusJob {
  seq++;
  return {
    id: `20261122-100000-${seq.toString(16).padStart(6, '0')}`,
    seq,
    repo: 'octo/site',
    kind: 'build',
    branch: 'main',
    sha: seq.toString(16).padStart(40, 'a'),
    ref: 'refs/heads/main',
    tag: null,
    state,
    exit: state === 'failed' ? 1 : state === 'succeeded' ? 0 : null,
    reason: state === 'failed' ? 'exited with 1' : null,
    started: '2026-11-22T10:00:00.000Z',
    finished: '2026-11-22T10:00:12.000Z',
    attempts: 1,
    ...fields,
  };
}

function capture() {
  let text = '';
  const log = createLogger({
    json: true,
    env: {},
    stream: {
      write: (c: string) => {
        text += c;
        return true;
      },
    } as unknown as NodeJS.WritableStream,
  });
  return { log, text: () => text };
}

test("end states: success, failure (the build's exit), error (timeout, output cap, interrupted), superseded only after it ran", () => {
  const cases: Array<[Partial<StatusJob> & { state: string }, string | undefined, string | undefined]> = [
    [{ state: 'succeeded' }, 'success', 'build succeeded in 12 s'],
    [{ state: 'failed', exit: 1, reason: 'exited with 1' }, 'failure', 'build failed (exit 1) in 12 s'],
    [{ state: 'failed', exit: null, reason: 'timed out after 900 s' }, 'error', 'build timed out after 900 s'],
    [
      { state: 'failed', exit: null, reason: 'printed more than 52428800 bytes' },
      'error',
      'build stopped by shipkit before it finished in 12 s',
    ],
    [{ state: 'interrupted' }, 'error', 'build interrupted (hook-server stopped)'],
    [{ state: 'superseded', attempts: 1 }, 'cancelled', 'superseded by a newer push'],
    [{ state: 'superseded', attempts: 0 }, undefined, undefined],
    [{ state: 'succeeded', kind: 'release' }, 'success', 'release succeeded in 12 s'],
  ];
  for (const [fields, state, description] of cases) {
    const status = endStatus(job(fields.state, fields));
    assert.is(status?.state, state, JSON.stringify(fields));
    assert.is(status?.description, description);
  }
  assert.is(endStatus(job('succeeded', { kind: 'release' }))!.context, 'shipkit/release');
});

test("each forge's request conforms to its documented shape; the checker catches a wrong one", () => {
  const forges: Array<[ResolvedReport, ReturnType<typeof githubStatusOperation>, string, string]> = [
    [{ forge: 'github', token: TOKEN, api: 'https://api.github.com' }, githubStatusOperation(TOKEN), 'octo/site', ''],
    [
      { forge: 'gitea', token: TOKEN, api: 'https://git.example.com/api/v1' },
      giteaStatusOperation(TOKEN),
      'octo/site',
      '/api/v1',
    ],
    [
      { forge: 'gitlab', token: TOKEN, api: 'https://gitlab.example.com/api/v4' },
      gitlabStatusOperation(TOKEN),
      'group/sub/project',
      '/api/v4',
    ],
  ];
  const sha = 'f'.repeat(40);
  for (const [report, op, repo, prefix] of forges) {
    for (const j of [
      job('succeeded', { repo }),
      job('failed', { repo }),
      job('superseded', { repo }),
      job('failed', { repo, reason: 'timed out after 5 s' }),
    ]) {
      const r = statusRequest(report, repo, sha, endStatus(j)!, 'https://ci.example.com/jobs/x');
      const headers = Object.fromEntries(
        Object.entries({ ...r.headers, 'Content-Type': 'application/json' }).map(([k, v]) => [k.toLowerCase(), v]),
      );
      const checked = requestProblems(op, 'POST', r.url.pathname.slice(prefix.length), headers, r.body);
      assert.equal(checked.problems, [], `${report.forge} ${j.state}: ${r.url} ${r.body}`);
    }
  }
  // The same checker on requests a careless client would send.
  const gh = githubStatusOperation(TOKEN);
  const good = {
    'content-type': 'application/json',
    authorization: `Bearer ${TOKEN}`,
    accept: 'application/vnd.github+json',
    'x-github-api-version': '2022-11-28',
    'user-agent': 'x',
  };
  assert.ok(
    requestProblems(gh, 'POST', `/repos/octo/site/statuses/${sha}`, good, '{"state":"failed"}').problems.some((p) =>
      /not one of/.test(p),
    ),
    'a GitLab state sent to GitHub',
  );
  assert.ok(
    requestProblems(gh, 'POST', `/repos/octo/site/statuses/${sha}`, good, '{"context":"x"}').problems.some((p) =>
      /state: required/.test(p),
    ),
  );
  assert.ok(
    requestProblems(
      gh,
      'POST',
      `/repos/octo/site/statuses/${sha}`,
      good,
      '{"state":"success","name":"x"}',
    ).problems.some((p) => /name: not a documented/.test(p)),
  );
  assert.ok(
    requestProblems(gh, 'PUT', `/repos/octo/site/status/${sha}`, good, '{"state":"success"}').problems.length >= 2,
  );
  assert.ok(
    requestProblems(
      gh,
      'POST',
      `/repos/octo/site/statuses/${sha}`,
      { ...good, authorization: `token ${TOKEN}` },
      '{"state":"success"}',
    ).problems.some((p) => /authorization/.test(p)),
  );
  assert.ok(
    requestProblems(
      gitlabStatusOperation(TOKEN),
      'POST',
      `/projects/group/sub/project/statuses/${sha}`,
      { 'content-type': 'application/json', 'private-token': TOKEN },
      '{"state":"success"}',
    ).problems.some((p) => /does not match/.test(p)),
    'an unencoded project path',
  );
});

test("one job's statuses go out in order: the end waits for a slow pending and stops its retries", async () => {
  const api = await startStatusApi(githubStatusOperation(TOKEN), {
    reply: (seen, res) => {
      // The pending is answered 500 after a while: the job ends meanwhile.
      if (seen.body.state === 'pending')
        setTimeout(() => {
          res.writeHead(500);
          res.end();
        }, 300);
      else {
        res.writeHead(201);
        res.end('{}');
      }
    },
  });
  apis.push(api.close);
  const outcomes = createDeliveryOutcomes();
  const reporter = createStatusReporter({
    reports: new Map([['octo/site', { forge: 'github', token: TOKEN, api: api.api }]]),
    log: capture().log,
    outcomes,
    retry: { attempts: 4, backoffMs: 50 },
  });
  const j = job('running');
  reporter.jobStarted(j);
  await waitFor(() => api.received.length === 1, { what: 'the pending' });
  reporter.jobEnded({ ...j, state: 'succeeded', exit: 0 });
  await waitFor(() => outcomes.of(j.id).length === 2 && outcomes.of(j.id).every((d) => d.outcome !== 'sending'), {
    what: 'both outcomes',
  });
  await reporter.stop();
  assert.equal(
    api.received.map((r) => r.body.state),
    ['pending', 'success'],
    'the pending is not retried once the end is due',
  );
  assert.ok(api.received[1].at - api.received[0].at >= 250, 'the end went out after the pending was answered');
  assert.equal(
    outcomes.of(j.id).map((d) => d.outcome),
    ['failed', 'delivered'],
  );
  assert.match(outcomes.of(j.id)[0].detail!, "not tried again: the job's end status replaced it");
});

test('Retry-After is honoured, within the cap; a 429 is retried', async () => {
  const api = await startStatusApi(githubStatusOperation(TOKEN), {
    reply: (_seen, res, n) => {
      if (n === 1) {
        res.writeHead(429, { 'Retry-After': '1' });
        res.end();
        return;
      }
      if (n === 2) {
        res.writeHead(503, { 'Retry-After': '3600' });
        res.end();
        return;
      }
      res.writeHead(201);
      res.end('{}');
    },
  });
  apis.push(api.close);
  const outcomes = createDeliveryOutcomes();
  const reporter = createStatusReporter({
    reports: new Map([['octo/site', { forge: 'github', token: TOKEN, api: api.api }]]),
    log: capture().log,
    outcomes,
    retry: { attempts: 3, backoffMs: 10, maxWaitMs: 1_500 },
  });
  const j = job('succeeded');
  reporter.jobEnded(j);
  await waitFor(() => outcomes.of(j.id)[0]?.outcome === 'delivered', { what: 'the status', timeoutMs: 5_000 });
  await reporter.stop();
  const [a, b, c] = api.received.map((r) => r.at);
  assert.ok(b - a >= 950, `waited for Retry-After: 1 (${b - a} ms)`);
  assert.ok(c - b >= 1_450 && c - b < 3_000, `an hour's Retry-After is capped at 1.5 s (${c - b} ms)`);
  assert.is(retryAfterOf('Wed, 21 Oct 2015 07:28:00 GMT', Date.parse('Wed, 21 Oct 2015 07:27:58 GMT')), 2_000);
  assert.is(retryAfterOf('soon'), undefined);
});

test('a superseded job that never ran and a release without its commit send nothing; other repos are not reported', async () => {
  const api = await startStatusApi(githubStatusOperation(TOKEN));
  apis.push(api.close);
  const { log, text } = capture();
  const reporter = createStatusReporter({
    reports: new Map([['octo/site', { forge: 'github', token: TOKEN, api: api.api }]]),
    log,
  });
  reporter.jobEnded(job('superseded', { attempts: 0 }));
  const release = job('running', { kind: 'release', sha: null, tag: 'v1.0.0' });
  reporter.jobStarted(release);
  reporter.jobEnded({ ...release, state: 'succeeded' });
  reporter.jobStarted(job('running', { repo: 'octo/other' }));
  const ran = job('superseded', { attempts: 2 });
  reporter.jobEnded(ran);
  await waitFor(() => api.received.length === 1, { what: 'the one status' });
  await reporter.stop();
  assert.equal(
    api.received.map((r) => [r.params.sha, r.body.state, r.body.description]),
    [[ran.sha, 'error', 'superseded by a newer push']],
  );
  assert.match(text(), /commit status \w+ skipped: the job does not know its commit/);
  assert.not.match(text(), TOKEN);
});

test.run();
