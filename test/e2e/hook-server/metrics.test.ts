// @deno
// GET /metrics of a real hook-server child after real signed deliveries and jobs: the bearer
// token, every family the contract lists, counts that match what was sent, and the text
// accepted by a strict reader of the format and by promtool (when installed).
import { randomUUID } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  FAKE_BUILD,
  deliverGithub,
  pingPayload,
  post,
  pushPayload,
  waitForJobState,
  writeConfig,
} from '../../fixtures/hooks/deliveries.ts';
import { parseExposition, promtoolCheck, sampleValue } from '../../fixtures/prometheus.ts';
import { startScript, tmpDir, waitFor } from '../../_helpers/common.ts';

const SECRET = `secret-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const env = {
  HOOK_SECRET: SECRET,
  HOOK_TOKEN: TOKEN,
  SHIPKIT_BUILD_COMMAND: FAKE_BUILD,
  SHIPKIT_RELEASE_COMMAND: FAKE_BUILD,
};

async function scrape(url: string, headers: Record<string, string> = { Authorization: `Bearer ${TOKEN}` }) {
  const res = await fetch(`${url}/metrics`, { headers });
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

test('deliveries, jobs, durations, queue, running and fsync latency, as Prometheus reads them', async () => {
  const dir = tmpDir();
  const config = writeConfig(dir, { repos: { 'octo/hold': {}, 'octo/fail': {}, 'octo/site': {} } });
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env });
  try {
    for (const headers of [
      {} as Record<string, string>,
      { Authorization: 'Bearer wrong' },
      { Authorization: `Basic ${TOKEN}` },
      { Authorization: `Bearer ${TOKEN}x` },
    ]) {
      const res = await scrape(server.url, headers);
      assert.is(res.status, 401, JSON.stringify(headers));
      assert.not.match(res.text, 'shipkit_');
    }
    assert.is(
      (await fetch(`${server.url}/metrics`, { method: 'POST', headers: { Authorization: `Bearer ${TOKEN}` } })).status,
      405,
    );

    writeFileSync(path.join(dir, 'hold'), '');
    const held = await deliverGithub(server.url, 'push', pushPayload('octo/hold'), SECRET);
    await waitForJobState(server.url, TOKEN, held.json.job, ['running']);
    const first = await deliverGithub(server.url, 'push', pushPayload('octo/fail', { sha: '1'.repeat(40) }), SECRET);
    const second = await deliverGithub(server.url, 'push', pushPayload('octo/fail', { sha: '2'.repeat(40) }), SECRET);
    assert.is((await waitForJobState(server.url, TOKEN, first.json.job, ['superseded'])).state, 'superseded');
    const during = parseExposition((await scrape(server.url)).text);
    assert.is(sampleValue(during, 'shipkit_jobs_running', 'shipkit_jobs_running'), 1);
    assert.is(sampleValue(during, 'shipkit_queue_length', 'shipkit_queue_length'), 1);
    rmSync(path.join(dir, 'hold'));
    await waitForJobState(server.url, TOKEN, held.json.job, ['succeeded']);
    await waitForJobState(server.url, TOKEN, second.json.job, ['failed']);
    assert.is((await deliverGithub(server.url, 'ping', pingPayload('octo/site'), SECRET)).status, 200);
    assert.is((await deliverGithub(server.url, 'push', pushPayload('octo/site'), 'wrong secret')).status, 401);
    assert.is((await deliverGithub(server.url, 'push', pushPayload('octo/nope'), SECRET)).status, 404);
    const gl = JSON.stringify({
      object_kind: 'push',
      ref: 'refs/heads/main',
      after: 'e'.repeat(40),
      checkout_sha: 'e'.repeat(40),
      project: { path_with_namespace: 'octo/site', git_http_url: 'https://gitlab.example.com/octo/site.git' },
    });
    const gitlab = await post(`${server.url}/hooks/gitlab`, gl, {
      'Content-Type': 'application/json',
      'X-Gitlab-Event': 'Push Hook',
      'X-Gitlab-Token': SECRET,
    });
    assert.is(gitlab.status, 202);
    await waitForJobState(server.url, TOKEN, gitlab.json.job, ['succeeded']);

    const res = (await waitFor(
      async () => {
        const r = await scrape(server.url);
        return r.text.includes('shipkit_jobs_total{repo="octo/site",state="succeeded"} 1') ? r : undefined;
      },
      { what: 'the last job to be counted' },
    )) as Awaited<ReturnType<typeof scrape>>;
    assert.is(res.status, 200);
    assert.is(res.type, 'text/plain; version=0.0.4; charset=utf-8');
    const m = parseExposition(res.text);
    const delivered = (forge: string, answer: string) =>
      sampleValue(m, 'shipkit_deliveries_total', 'shipkit_deliveries_total', { forge, answer });
    assert.is(delivered('github', '202'), 3);
    assert.is(delivered('github', '200'), 1);
    assert.is(delivered('github', '401'), 1);
    assert.is(delivered('github', '404'), 1);
    assert.is(delivered('gitlab', '202'), 1);
    const jobs = (repo: string, state: string) =>
      sampleValue(m, 'shipkit_jobs_total', 'shipkit_jobs_total', { repo, state });
    assert.is(jobs('octo/hold', 'succeeded'), 1);
    assert.is(jobs('octo/fail', 'superseded'), 1);
    assert.is(jobs('octo/fail', 'failed'), 1);
    assert.is(m.get('shipkit_job_duration_seconds')!.type, 'histogram');
    assert.is(
      sampleValue(m, 'shipkit_job_duration_seconds', 'shipkit_job_duration_seconds_count', { repo: 'octo/fail' }),
      1,
      'a superseded job has no duration',
    );
    assert.is(
      sampleValue(m, 'shipkit_job_duration_seconds', 'shipkit_job_duration_seconds_count', { repo: 'octo/hold' }),
      1,
    );
    assert.ok(
      sampleValue(m, 'shipkit_job_duration_seconds', 'shipkit_job_duration_seconds_sum', { repo: 'octo/hold' })! > 0,
    );
    assert.is(sampleValue(m, 'shipkit_jobs_running', 'shipkit_jobs_running'), 0);
    assert.is(sampleValue(m, 'shipkit_queue_length', 'shipkit_queue_length'), 0);
    // Each job is at least a queued, a running and an end record: several flushes, each timed.
    assert.ok(sampleValue(m, 'shipkit_journal_fsync_seconds', 'shipkit_journal_fsync_seconds_count')! >= 8);
    assert.ok(m.has('shipkit_notifications_total'));
    const promtool = promtoolCheck(res.text);
    if (promtool) assert.is(promtool.code, 0, promtool.output);
    else
      console.log(
        '  (promtool is not installed: apt-get install prometheus; the strict reader alone checked the format)',
      );
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test('without token: the metrics are off (404), as the read API', async () => {
  const dir = tmpDir();
  const config = writeConfig(dir, { repos: { 'octo/site': {} }, token: false });
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env });
  try {
    const res = await scrape(server.url);
    assert.is(res.status, 404);
    assert.not.match(res.text, 'shipkit_');
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test.run();
