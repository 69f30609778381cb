// Not // @deno: hook-server runs in this process (under tsx/Node), so SHIPKIT_TEST_RUNTIME=deno would change nothing.
// A forge API that refuses (401, 404, 422), fails (500) or hangs, against a real hook-server
// (started in this process so its delivery timing can be short and `deliveries` read directly)
// running real job processes: the jobs' state, exit and timing are unaffected, the next job starts
// without waiting, retries are bounded, an end status is never overtaken by a retried pending, and
// each failure is on the job page (GET /jobs/ID as HTML), in hookServer.deliveries and in the log,
// never with the token. stop() cancels what still hangs.
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadShipkitConfig } from '../../../lib/config/shipkit-yml.ts';
import { resolveServerSecrets, startHookServer, type HookServer } from '../../../lib/server/hook-server.ts';
import { createLogger } from '../../../lib/core/log.ts';
import { FAKE_BUILD, deliverGithub, pushPayload } from '../../fixtures/hooks/deliveries.ts';
import { githubStatusOperation, startStatusApi } from '../../fixtures/forge-status.ts';
import { tmpDir, waitFor } from '../../_helpers/common.ts';

const SECRET = `secret-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const STATUS_TOKEN = `ghp_${randomUUID().replace(/-/g, '')}`;
const TIMEOUT_MS = 2_000;
const ATTEMPTS = 3;

// (Not */hang: the stand-in build hangs for repos named so.)
async function start(apiBase: string, repos: string[]) {
  const dir = tmpDir();
  const file = path.join(dir, 'shipkit.yml');
  writeFileSync(
    file,
    [
      `data: ${path.join(dir, 'data')}`,
      'secret: env:HOOK_SECRET',
      'token: env:HOOK_TOKEN',
      'public_url: https://ci.example.com',
      'report: github',
      'report_token: env:STATUS_TOKEN',
      `report_api: ${apiBase}`,
      'repos:',
      ...repos.map((r) => `  ${r}: {}`),
      '',
    ].join('\n'),
  );
  const config = await loadShipkitConfig(file);
  const env = { ...process.env, HOOK_SECRET: SECRET, HOOK_TOKEN: TOKEN, STATUS_TOKEN };
  const { secrets, token, notify, report } = await resolveServerSecrets(config, env);
  let logged = '';
  const log = createLogger({
    json: true,
    env: {},
    stream: {
      write: (c: string) => {
        logged += c;
        return true;
      },
    } as unknown as NodeJS.WritableStream,
  });
  const server = await startHookServer({
    config,
    listen: { host: '127.0.0.1', port: 0 },
    secrets,
    token,
    notify,
    report,
    log,
    env,
    commands: { build: [FAKE_BUILD], release: [FAKE_BUILD] },
    delivery: { timeoutMs: TIMEOUT_MS, attempts: ATTEMPTS, backoffMs: 100 },
  });
  return { server, logged: () => logged };
}

let shaCount = 0;
async function push(server: HookServer, repo: string): Promise<{ id: string; sha: string }> {
  const sha = (++shaCount).toString(16).padStart(40, '0');
  const res = await deliverGithub(server.url, 'push', pushPayload(repo, { sha }), SECRET);
  assert.is(res.status, 202);
  return { id: res.json.job, sha };
}

function waitForJob(server: HookServer, id: string) {
  return waitFor(
    () => {
      const job = server.queue.get(id);
      return job && ['succeeded', 'failed'].includes(job.state) ? job : undefined;
    },
    { what: `job ${id}` },
  ) as Promise<NonNullable<ReturnType<HookServer['queue']['get']>>>;
}

async function jobPage(server: HookServer, id: string): Promise<string> {
  const res = await fetch(`${server.url}/jobs/${id}`, {
    headers: { Accept: 'text/html', Authorization: `Bearer ${TOKEN}` },
  });
  assert.is(res.status, 200);
  return res.text();
}

test('401, 403, 404 and 422 are not retried; the hint is on the job page, in deliveries and in the log, without the token', async () => {
  const codes: Record<string, number> = { r401: 401, r403: 403, r404: 404, r422: 422 };
  const api = await startStatusApi(githubStatusOperation(STATUS_TOKEN), {
    reply: (seen, res) => {
      res.writeHead(codes[seen.params.repo] ?? 201, { 'Content-Type': 'application/json' });
      res.end('{"message":"refused"}');
    },
  });
  const { server, logged } = await start(api.api, ['octo/r401', 'octo/r403', 'octo/r404', 'octo/r422']);
  try {
    const jobs = {
      r401: await push(server, 'octo/r401'),
      r403: await push(server, 'octo/r403'),
      r404: await push(server, 'octo/r404'),
      r422: await push(server, 'octo/r422'),
    };
    for (const { id } of Object.values(jobs)) {
      const job = await waitForJob(server, id);
      assert.is(job.state, 'succeeded', 'the job is unaffected');
      assert.is(job.exit, 0);
    }
    await waitFor(
      () =>
        Object.values(jobs).every(
          ({ id }) => server.deliveries.of(id).filter((d) => d.outcome === 'failed').length === 2,
        ),
      { what: 'the failed statuses' },
    );
    const hints: Record<string, RegExp> = {
      r401: /the report_token was refused \(401\)/,
      r403: /403: the token may not set statuses on octo\/r403/,
      r404: /404: the token cannot see octo\/r404 or the sha is unknown/,
      r422: /422: the forge refused the status as invalid/,
    };
    for (const [name, { id, sha }] of Object.entries(jobs)) {
      assert.equal(
        api.forSha(sha).map((r) => r.body.state),
        ['pending', 'success'],
        `${name}: one request each, no retry`,
      );
      for (const r of api.forSha(sha)) assert.equal(r.problems, []);
      const records = server.deliveries.of(id);
      assert.equal(
        records.map((d) => [d.what, d.outcome, d.attempts]),
        [
          ['commit status shipkit/build: pending (github)', 'failed', 1],
          ['commit status shipkit/build: success (github)', 'failed', 1],
        ],
      );
      for (const d of records) assert.match(d.detail!, hints[name]);
      assert.match(await jobPage(server, id), hints[name]);
      assert.match(logged(), hints[name]);
    }
    assert.not.match(logged(), STATUS_TOKEN);
    assert.match(server.metrics.render(), 'shipkit_commit_statuses_total{forge="github",outcome="failed"} 8');
  } finally {
    await server.stop();
    await api.close();
  }
});

test('500 is retried a bounded number of times and a hang is timed out; the jobs and the next job never wait; stop() cancels', async () => {
  const api = await startStatusApi(githubStatusOperation(STATUS_TOKEN), {
    reply: (seen, res) => {
      if (seen.params.repo === 'stall') return; // never answers
      res.writeHead(seen.params.repo === 'r500' ? 500 : 201, { 'Content-Type': 'application/json' });
      res.end('{}');
    },
  });
  const { server, logged } = await start(api.api, ['octo/r500', 'octo/stall', 'octo/ok']);
  try {
    const first = Date.now();
    const stall = await push(server, 'octo/stall');
    const r500 = await push(server, 'octo/r500');
    const ok = await push(server, 'octo/ok');
    const okJob = await waitForJob(server, ok.id);
    const allDone = Date.now() - first;
    for (const { id } of [stall, r500, ok]) {
      const job = await waitForJob(server, id);
      assert.is(job.state, 'succeeded');
      assert.ok(
        Date.parse(job.finished!) - Date.parse(job.started!) < TIMEOUT_MS,
        `job ${job.repo} took no longer for its statuses`,
      );
    }
    // The hanging API holds the hang job's statuses for seconds (pending, then 3 timed-out end attempts).
    assert.is(okJob.state, 'succeeded');
    assert.ok(allDone < ATTEMPTS * TIMEOUT_MS, `three jobs done in ${allDone} ms while the API hangs`);
    assert.is(
      server.deliveries.of(stall.id).at(-1)!.outcome,
      'sending',
      "the hang job's end status was still being tried when the last job had finished",
    );

    await waitFor(
      () => [stall, r500].every(({ id }) => server.deliveries.of(id).every((d) => d.outcome === 'failed')),
      { what: 'the statuses to give up', timeoutMs: 20_000 },
    );
    const ends = (sha: string) => api.forSha(sha).filter((r) => r.body.state !== 'pending');
    assert.is(ends(r500.sha).length, ATTEMPTS, 'the end status of the 500 job: exactly the bounded attempts');
    assert.is(ends(stall.sha).length, ATTEMPTS, 'the end status of the hanging API: exactly the bounded attempts');
    for (const { sha } of [stall, r500, ok]) {
      const states = api.forSha(sha).map((r) => r.body.state);
      assert.ok(
        states.lastIndexOf('pending') < states.indexOf('success'),
        `no pending after the end: ${states.join(', ')}`,
      );
      assert.ok(states.length <= 2 * ATTEMPTS, `bounded: ${states.length} requests`);
    }
    const [hangEnd] = server.deliveries.of(stall.id).slice(-1);
    assert.is(hangEnd.attempts, ATTEMPTS);
    assert.match(hangEnd.detail!, `timed out after ${TIMEOUT_MS / 1000} s (${ATTEMPTS} attempts)`);
    const [r500End] = server.deliveries.of(r500.id).slice(-1);
    assert.match(r500End.detail!, `answered 500 (${ATTEMPTS} attempts)`);
    assert.match(await jobPage(server, r500.id), `answered 500 (${ATTEMPTS} attempts)`);
    assert.equal(
      server.deliveries.of(ok.id).map((d) => d.outcome),
      ['delivered', 'delivered'],
    );
    assert.match(logged(), /commit status not set; trying again/);

    // A status still hanging when hook-server stops: cancelled after the grace, not waited for.
    const late = await push(server, 'octo/stall');
    await waitForJob(server, late.id);
    const stopping = Date.now();
    await server.stop();
    assert.ok(Date.now() - stopping < 5_000, `stop took ${Date.now() - stopping} ms`);
    assert.is(server.deliveries.of(late.id).at(-1)!.outcome, 'failed');
    assert.match(
      server.deliveries.of(late.id).at(-1)!.detail ?? '',
      /cancelled: hook-server is stopping|not tried again: hook-server stopped|not sent: hook-server stopped/,
    );
    assert.not.match(logged(), STATUS_TOKEN);
  } finally {
    await server.stop();
    await api.close();
  }
});

test.run();
