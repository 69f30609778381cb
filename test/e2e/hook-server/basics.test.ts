// @deno
// hook-server as a child process on a free port: real payloads, signatures made outside
// shipkit, every hostile input the issue lists, the read API and the first run.
// Its first-run test is README.md's `hook-server` on built-in defaults.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  FAKE_BUILD,
  deliverGithub,
  githubSignature,
  opensslHex,
  pingPayload,
  post,
  pushPayload,
  readRuns,
  releasePayload,
  tagPushPayload,
  writeConfig,
} from '../../fixtures/hooks/deliveries.ts';
import {
  ROOT,
  RUNTIME,
  rootBuildUser,
  runCommand,
  runScript,
  scriptCommand,
  startScript,
  scriptsFromBundle,
  tmpDir,
  waitFor,
  type Server,
} from '../../_helpers/common.ts';

const SECRET = `secret-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const dir = tmpDir();
const config = writeConfig(dir, {
  repos: {
    'octo/site': {},
    'octo/other': { branch: 'prod' },
    'group/app': {},
    'octo/own': { secret: 'own-secret-value' },
  },
});
const env = {
  HOOK_SECRET: SECRET,
  HOOK_TOKEN: TOKEN,
  SHIPKIT_BUILD_COMMAND: FAKE_BUILD,
  SHIPKIT_RELEASE_COMMAND: FAKE_BUILD,
};
let server: Server;
const auth = { Authorization: `Bearer ${TOKEN}` };

async function getJson(route: string, headers: Record<string, string> = auth) {
  const res = await fetch(server.url + route, { headers });
  return { status: res.status, json: await res.json().catch(() => undefined) };
}

async function waitForState(id: string, states: string[]) {
  return waitFor(
    async () => {
      const { json } = await getJson(`/jobs/${id}`);
      return states.includes(json?.state) ? json : undefined;
    },
    { what: `job ${id} to reach ${states.join('/')}`, timeoutMs: 30_000 },
  );
}

function jobCount(): number {
  const text = existsSync(path.join(dir, 'data/journal/jobs.journal'))
    ? readFileSync(path.join(dir, 'data/journal/jobs.journal'), 'utf8')
    : '';
  return new Set(
    text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l.slice(9)).id),
  ).size;
}

function vmHwmKb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+)/.exec(status)![1]);
}

test.before(async () => {
  server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env });
});
test.after(async () => {
  assert.is(await server.stop('SIGTERM'), 0);
});

test("ping → 200; push to the configured branch → 202 and the build runs with the contract's command line", async () => {
  const ping = await deliverGithub(server.url, 'ping', pingPayload('octo/site'), SECRET);
  assert.is(ping.status, 200);
  assert.ok(ping.json.pong);
  const sha = 'b'.repeat(40);
  const push = await deliverGithub(server.url, 'push', pushPayload('octo/site', { sha }), SECRET);
  assert.is(push.status, 202);
  assert.match(push.json.job, /^\d{8}-\d{6}-[0-9a-f]{6}$/);
  const job = await waitForState(push.json.job, ['succeeded']);
  assert.equal(
    Object.keys(job).filter((k) =>
      ['id', 'repo', 'kind', 'sha', 'ref', 'state', 'exit', 'started', 'finished'].includes(k),
    ).length,
    9,
  );
  assert.is(job.repo, 'octo/site');
  assert.is(job.kind, 'build');
  assert.is(job.sha, sha);
  assert.is(job.exit, 0);
  const argv = readFileSync(path.join(dir, `argv-${job.id}.txt`), 'utf8')
    .trim()
    .split('\n');
  assert.equal(argv, [
    'octo/site',
    '--config',
    config,
    '--sha',
    sha,
    '--ref',
    'refs/heads/main',
    '--job-id',
    job.id,
    '--url',
    'https://github.com/octo/site.git',
  ]);
});

test('a published release → 202 and a release job with --tag', async () => {
  const res = await deliverGithub(server.url, 'release', releasePayload('octo/site', { tag: 'v1.2.3' }), SECRET);
  assert.is(res.status, 202);
  const job = await waitForState(res.json.job, ['succeeded']);
  assert.is(job.kind, 'release');
  const argv = readFileSync(path.join(dir, `argv-${job.id}.txt`), 'utf8')
    .trim()
    .split('\n');
  assert.equal(argv, ['octo/site', '--tag', 'v1.2.3', '--config', config, '--job-id', job.id]);
});

test('POST / detects the forge; Gitea bare-hex signature, form bodies and GitLab tokens are accepted', async () => {
  const body = JSON.stringify(pushPayload('octo/site', { sha: 'c'.repeat(40) }));
  const gitea = await post(`${server.url}/`, body, {
    'Content-Type': 'application/json',
    'X-Gitea-Event': 'push',
    'X-GitHub-Event': 'push',
    'X-Gitea-Delivery': randomUUID(),
    'X-Gitea-Signature': opensslHex(SECRET, body),
  });
  assert.is(gitea.status, 202);
  const form = new URLSearchParams({
    payload: JSON.stringify(pushPayload('octo/site', { sha: 'd'.repeat(40) })),
  }).toString();
  const formRes = await post(`${server.url}/hooks/github`, form, {
    'Content-Type': 'application/x-www-form-urlencoded',
    'X-GitHub-Event': 'push',
    'X-GitHub-Delivery': randomUUID(),
    'X-Hub-Signature-256': await githubSignature(SECRET, form),
  });
  assert.is(formRes.status, 202);
  const project = { path_with_namespace: 'group/app', git_http_url: 'https://gitlab.example.com/group/app.git' };
  const gl = JSON.stringify({
    object_kind: 'push',
    ref: 'refs/heads/main',
    after: 'e'.repeat(40),
    checkout_sha: 'e'.repeat(40),
    project,
  });
  const gitlab = await post(`${server.url}/hooks/gitlab`, gl, {
    'Content-Type': 'application/json',
    'X-Gitlab-Event': 'Push Hook',
    'X-Gitlab-Token': SECRET,
  });
  assert.is(gitlab.status, 202);
  const wrongToken = await post(`${server.url}/hooks/gitlab`, gl, {
    'Content-Type': 'application/json',
    'X-Gitlab-Event': 'Push Hook',
    'X-Gitlab-Token': 'nope',
  });
  assert.is(wrongToken.status, 401);
  await waitForState(gitlab.json.job, ['succeeded']);
});

test('Gitea and Forgejo form-encoded deliveries (real payload, signed over the JSON as those forges do) → 202; a form signed over its body → 401', async () => {
  const payload = JSON.parse(readFileSync('/work/shared/forge-payloads/gitea-push-event.json', 'utf8'));
  Object.assign(payload.repository, { full_name: 'octo/site', clone_url: 'https://github.com/octo/site.git' });
  payload.ref = 'refs/heads/main';
  payload.after = 'f'.repeat(40);
  const json = JSON.stringify(payload);
  const form = new URLSearchParams({ payload: json }).toString();
  const headers = (event: string, signed: string) => ({
    'Content-Type': 'application/x-www-form-urlencoded',
    [`X-${event}-Event`]: 'push',
    'X-GitHub-Event': 'push',
    [`X-${event}-Delivery`]: randomUUID(),
    [`X-${event}-Signature`]: opensslHex(SECRET, signed),
    'X-Hub-Signature-256': `sha256=${opensslHex(SECRET, signed)}`,
  });
  const gitea = await post(`${server.url}/hooks/gitea`, form, headers('Gitea', json));
  assert.is(gitea.status, 202, JSON.stringify(gitea.json));
  const forgejo = await post(
    `${server.url}/`,
    form.replace('ffffffff', 'fffffffe'),
    headers('Forgejo', json.replace('ffffffff', 'fffffffe')),
  );
  assert.is(forgejo.status, 202, JSON.stringify(forgejo.json));
  const job = await waitForState(gitea.json.job, ['succeeded', 'superseded']);
  assert.is(job.sha, 'f'.repeat(40));
  const overBody = await post(`${server.url}/hooks/gitea`, form, headers('Gitea', form));
  assert.is(overBody.status, 401);
});

/** Until no job of the earlier tests is queued or running, so counting what starts from here is fair. */
async function waitForQuiet() {
  await waitFor(
    async () => {
      const { json } = await getJson('/jobs');
      const jobs: Array<{ state: string }> | undefined = Array.isArray(json) ? json : json?.jobs;
      return jobs !== undefined && jobs.every((j) => j.state !== 'queued' && j.state !== 'running');
    },
    { what: "the earlier tests' jobs to end", timeoutMs: 30_000 },
  );
}

test('hostile and unwanted deliveries: the right status, a short message with a request id, nothing queued', async () => {
  // A job an earlier test queued may still start (CI once counted it here as built).
  await waitForQuiet();
  const before = jobCount();
  const runsBefore = readRuns(dir).started.length;
  const payload = pushPayload('octo/site');
  const body = JSON.stringify(payload);
  const sig = await githubSignature(SECRET, body);
  const base = { 'Content-Type': 'application/json', 'X-GitHub-Event': 'push', 'X-GitHub-Delivery': randomUUID() };
  const signed = async (text: string, headers: Record<string, string> = {}) =>
    post(`${server.url}/hooks/github`, text, {
      ...base,
      'X-Hub-Signature-256': await githubSignature(SECRET, text),
      ...headers,
    });
  const cases: Array<[string, () => Promise<{ status: number; json: any }>, number]> = [
    ['missing signature', () => post(`${server.url}/hooks/github`, body, base), 401],
    [
      'SHA-1-only signature',
      () => post(`${server.url}/hooks/github`, body, { ...base, 'X-Hub-Signature': `sha1=${'0'.repeat(40)}` }),
      401,
    ],
    [
      'wrong secret',
      async () =>
        post(`${server.url}/hooks/github`, body, {
          ...base,
          'X-Hub-Signature-256': await githubSignature('wrong', body),
        }),
      401,
    ],
    [
      'signature over another body',
      () =>
        post(`${server.url}/hooks/github`, body.replace('refs/heads/main', 'refs/heads/evil'), {
          ...base,
          'X-Hub-Signature-256': sig,
        }),
      401,
    ],
    [
      'repo with its own secret signed with the default one',
      () => signed(JSON.stringify(pushPayload('octo/own'))),
      401,
    ],
    ['truncated JSON', () => signed(body.slice(0, 100)), 400],
    ['JSON that is not an object', () => signed('[1,2,3]'), 400],
    ['missing repository fields', () => signed(JSON.stringify({ ...payload, repository: { name: 'site' } })), 400],
    [
      'full_name with traversal',
      () =>
        signed(JSON.stringify({ ...payload, repository: { ...payload.repository, full_name: '../../etc/passwd' } })),
      400,
    ],
    [
      'form body without payload=',
      async () => {
        const f = 'ref=refs/heads/main';
        return post(`${server.url}/hooks/github`, f, {
          ...base,
          'Content-Type': 'application/x-www-form-urlencoded',
          'X-Hub-Signature-256': await githubSignature(SECRET, f),
        });
      },
      400,
    ],
    [
      'wrong content type',
      () =>
        post(`${server.url}/hooks/github`, body, { ...base, 'Content-Type': 'text/plain', 'X-Hub-Signature-256': sig }),
      415,
    ],
    [
      'no forge headers on POST /',
      () => post(`${server.url}/`, body, { 'Content-Type': 'application/json', 'X-Hub-Signature-256': sig }),
      400,
    ],
    ['unknown repository', () => signed(JSON.stringify(pushPayload('octo/unknown'))), 404],
    [
      'GET on a hook path',
      async () => {
        const r = await fetch(`${server.url}/hooks/github`);
        return { status: r.status, json: await r.json() };
      },
      405,
    ],
    [
      'unknown path',
      async () => {
        const r = await fetch(`${server.url}/nope`, { method: 'POST' });
        return { status: r.status, json: await r.json() };
      },
      404,
    ],
  ];
  // A signature made with another secret: the one answer that names a cause, the commonest one.
  const wrongSecret = [
    'wrong secret',
    'signature over another body',
    'repo with its own secret signed with the default one',
  ];
  for (const [name, send, status] of cases) {
    const res = await send();
    assert.is(res.status, status, name);
    assert.type(res.json.error, 'string', name);
    if (wrongSecret.includes(name))
      assert.is(res.json.error, "bad signature: most likely the secret differs from hook-server's", name);
    else assert.ok(res.json.error.length < 40, `${name}: short message`);
    assert.match(res.json.request, /^[0-9a-f]{12}$/, `${name}: request id`);
    assert.not.ok(JSON.stringify(res.json).includes(SECRET));
  }
  const ignored: Array<[string, () => Promise<{ status: number; json: any }>]> = [
    ['tag ref on push', () => signed(JSON.stringify(tagPushPayload('octo/site')))],
    ['push to another branch', () => signed(JSON.stringify(pushPayload('octo/other', { branch: 'main' })))],
    [
      'release that is not published',
      () => signed(JSON.stringify(releasePayload('octo/site', { action: 'created' })), { 'X-GitHub-Event': 'release' }),
    ],
    ['an event we do not handle', () => signed(JSON.stringify({ action: 'opened' }), { 'X-GitHub-Event': 'issues' })],
  ];
  for (const [name, send] of ignored) {
    const res = await send();
    assert.is(res.status, 200, name);
    assert.type(res.json.ignored, 'string', name);
  }
  assert.is(jobCount(), before, 'nothing journaled');
  assert.is(readRuns(dir).started.length, runsBefore, 'nothing built');
  assert.match(server.output(), /request refused .*reason="?only a SHA-1 signature/);
});

test('26 MB bodies: 413 while reading (declared or streamed), and the server does not buffer them', async () => {
  const before = vmHwmKb(server.child.pid!);
  const declared = await new Promise<number>((resolve, reject) => {
    const req = http.request(
      `${server.url}/hooks/github`,
      {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          'X-GitHub-Event': 'push',
          'X-Hub-Signature-256': `sha256=${'0'.repeat(64)}`,
          'Content-Length': String(26 * 1024 * 1024),
        },
      },
      (res) => {
        res.resume();
        resolve(res.statusCode!);
      },
    );
    req.on('error', reject);
    req.write(Buffer.alloc(64 * 1024, 'x'));
  });
  assert.is(declared, 413);
  const chunk = Buffer.alloc(1024 * 1024, 'x');
  const streamed = await Promise.all(
    Array.from(
      { length: 4 },
      () =>
        new Promise<number | string>((resolve) => {
          const req = http.request(
            `${server.url}/hooks/github`,
            {
              method: 'POST',
              headers: {
                'Content-Type': 'application/json',
                'X-GitHub-Event': 'push',
                'X-Hub-Signature-256': `sha256=${'0'.repeat(64)}`,
              },
            },
            (res) => {
              res.resume();
              resolve(res.statusCode!);
            },
          );
          req.on('error', (error) => resolve((error as NodeJS.ErrnoException).code ?? 'error'));
          let sent = 0;
          const pump = () => {
            while (sent < 26) {
              sent++;
              if (!req.write(chunk)) return void req.once('drain', pump);
            }
            req.end();
          };
          pump();
        }),
    ),
  );
  for (const result of streamed)
    assert.ok(result === 413 || result === 'ECONNRESET' || result === 'EPIPE', String(result));
  assert.ok(streamed.includes(413));
  const grownMb = (vmHwmKb(server.child.pid!) - before) / 1024;
  // A server that held the bodies would grow by more than the 104 MB sent. Under Node it stays
  // under 60 MB; under Deno the same requests grew it by 45-67 MB in runs on a loaded machine (CI
  // failed at 62), which buffers of the runtime's we have not traced, so its bound is looser there
  // but still below what holding the bodies would take.
  const limitMb = RUNTIME === 'deno' ? 90 : 60;
  console.log(`  peak memory grew by ${grownMb.toFixed(0)} MB for 4 × 26 MB bodies (${RUNTIME}, bound ${limitMb} MB)`);
  assert.ok(grownMb < limitMb, `peak memory grew by ${grownMb.toFixed(0)} MB for 4 × 26 MB bodies`);
  const health = await fetch(`${server.url}/healthz`);
  assert.is(health.status, 200);
});

test('a large signed delivery (past the in-memory size, spooled to disk) is verified and queued; the spool file is removed', async () => {
  // group/app's remote was pinned by its GitLab deliveries: the same clone URL here.
  const payload = {
    ...pushPayload('group/app', { sha: 'c'.repeat(40), cloneUrl: 'https://gitlab.example.com/group/app.git' }),
    padding: 'x'.repeat(2 * 1024 * 1024),
  };
  const res = await deliverGithub(server.url, 'push', payload, SECRET);
  assert.is(res.status, 202);
  assert.match(res.json.job, /^\d{8}-\d{6}-[0-9a-f]{6}$/);
  await waitFor(() => readdirSync(path.join(dir, 'data/tmp')).length === 0, {
    what: 'the spooled body to be removed',
    timeoutMs: 5_000,
  });
  const tampered = JSON.stringify({ ...payload, padding: 'y'.repeat(2 * 1024 * 1024) });
  const refused = await post(`${server.url}/hooks/github`, tampered, {
    'Content-Type': 'application/json',
    'X-GitHub-Event': 'push',
    'X-Hub-Signature-256': await githubSignature(SECRET, JSON.stringify(payload)),
  });
  assert.is(refused.status, 401);
  await waitFor(() => readdirSync(path.join(dir, 'data/tmp')).length === 0, {
    what: 'the refused spooled body to be removed',
    timeoutMs: 5_000,
  });
});

test('bodies spooled by a server that died mid-request are removed on the next start', async () => {
  const own = tmpDir();
  const ownConfig = writeConfig(own, { repos: { 'octo/site': {} } });
  mkdirSync(path.join(own, 'data/tmp'), { recursive: true });
  writeFileSync(path.join(own, 'data/tmp/body-0123456789ab'), Buffer.alloc(1024 * 1024, 'x'));
  const fresh = await startScript('hook-server', ['--config', ownConfig, '--listen', '127.0.0.1:0'], { env });
  assert.equal(readdirSync(path.join(own, 'data/tmp')), []);
  assert.is(await fresh.stop(), 0);
});

test('a client that trickles its body (or its headers) is cut off at the timeout', async () => {
  const slowConfig = writeConfig(tmpDir(), { repos: { 'octo/site': {} } });
  const slow = await startScript(
    'hook-server',
    ['--config', slowConfig, '--listen', '127.0.0.1:0', '--body-timeout', '1.5', '--header-timeout', '1'],
    { env },
  );
  const started = Date.now();
  const answer = await new Promise<string>((resolve) => {
    const socket = net.connect(slow.port, '127.0.0.1', () => {
      // Signed (badly), so that the body is read: an unsigned one is refused from its headers.
      socket.write(
        `POST /hooks/github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\nX-Hub-Signature-256: sha256=${'0'.repeat(64)}\r\nContent-Length: 1000\r\n\r\n{`,
      );
      const timer = setInterval(() => socket.writable && socket.write(' '), 300);
      let text = '';
      socket.on('data', (d) => (text += d));
      socket.on('close', () => {
        clearInterval(timer);
        resolve(text);
      });
      socket.on('error', () => {});
    });
  });
  assert.match(answer, /^HTTP\/1\.1 408/);
  assert.ok(Date.now() - started < 20_000);
  // Headers trickled in (slowloris): the connection is closed at the header timeout.
  const headerStart = Date.now();
  await new Promise<void>((resolve) => {
    const socket = net.connect(slow.port, '127.0.0.1', () => {
      socket.write('POST /hooks/github HTTP/1.1\r\nHost: x\r\n');
      const timer = setInterval(() => socket.writable && socket.write('X-Slow: 1\r\n'), 300);
      socket.on('close', () => {
        clearInterval(timer);
        resolve();
      });
      socket.on('error', () => {});
      socket.resume();
    });
  });
  assert.ok(Date.now() - headerStart < 15_000, 'closed at the header timeout');
  assert.is(await slow.stop(), 0);
});

test('1,000 concurrent connections are all answered', async () => {
  const body = JSON.stringify(pingPayload('octo/site'));
  const sig = await githubSignature(SECRET, body);
  const request = `POST /hooks/github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-GitHub-Event: ping\r\nX-Hub-Signature-256: ${sig}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
  const sockets: net.Socket[] = [];
  await Promise.all(
    Array.from(
      { length: 1000 },
      () =>
        new Promise<void>((resolve, reject) => {
          const s = net.connect(server.port, '127.0.0.1', () => resolve());
          s.on('error', reject);
          sockets.push(s);
        }),
    ),
  );
  const statuses = await Promise.all(
    sockets.map(
      (s) =>
        new Promise<string>((resolve) => {
          let text = '';
          s.on('data', (d) => (text += d));
          s.on('close', () => resolve(text.slice(9, 12)));
          s.write(request);
        }),
    ),
  );
  const counts: Record<string, number> = {};
  for (const s of statuses) counts[s] = (counts[s] ?? 0) + 1;
  assert.equal(counts, { 200: 1000 });
});

test('read API: bearer token required (constant-time compare), /jobs, /jobs/ID, /jobs/ID/log; /healthz open', async () => {
  assert.is((await getJson('/healthz', {})).status, 200);
  assert.is((await getJson('/jobs', {})).status, 401);
  assert.is((await getJson('/jobs', { Authorization: `Bearer ${TOKEN}x` })).status, 401);
  assert.is((await getJson('/jobs', { Authorization: `Basic ${TOKEN}` })).status, 401);
  const { status, json } = await getJson('/jobs');
  assert.is(status, 200);
  assert.ok(json.jobs.length >= 3);
  const id = json.jobs.find((j: any) => j.state === 'succeeded').id;
  assert.is((await getJson(`/jobs/${id}`)).json.id, id);
  const log = await fetch(`${server.url}/jobs/${id}/log`, { headers: auth });
  assert.is(log.status, 200);
  assert.match(await log.text(), new RegExp(`job ${id} attempt 1`));
  assert.is((await getJson('/jobs/20990101-000000-abcdef')).status, 404);
  assert.is((await getJson('/jobs/..%2F..%2Fetc')).status, 404);
  assert.is((await getJson(`/jobs?repo=octo/site&state=succeeded&limit=1`)).json.jobs.length, 1);
});

test('--help, an unknown flag, a repo without any secret, a secret that is not set', async () => {
  const help = await runScript('hook-server', ['--help']);
  assert.is(help.exitCode, 0);
  assert.match(help.stdout, /Usage: hook-server/);
  const unknown = await runScript('hook-server', ['--nope']);
  assert.is(unknown.exitCode, 2);
  assert.match(unknown.stderr, /Unknown option --nope/);
  const bare = tmpDir();
  const noSecret = path.join(bare, 'shipkit.yml');
  writeFileSync(noSecret, `data: ${bare}/data\nrepos:\n  octo/site:\n    branch: main\n`);
  const refused = await runScript('hook-server', ['--config', noSecret, '--listen', '127.0.0.1:0']);
  assert.is(refused.exitCode, 2);
  assert.match(refused.stderr, /no webhook secret/);
  const unset = await runScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], {
    env: { HOOK_SECRET: undefined },
  });
  assert.is(unset.exitCode, 2);
  assert.match(unset.stderr, /HOOK_SECRET is not set/);
  const second = await runScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env });
  assert.is(second.exitCode, 1, 'a second hook-server on the same data folder is refused');
  assert.match(second.stderr, /another hook-server uses it/);
  assert.not.ok(existsSync(path.join(bare, 'data')), 'nothing written');
});

test('--help lists the routes hook-server answers: the status page (GET /), /login and /logout among them, and each GET route it names is there', async () => {
  const help = (await runScript('hook-server', ['--help'])).stdout;
  const routes = help.slice(help.indexOf('Routes:'));
  assert.match(routes, /^ {2}GET {2}\/ +the status page/m);
  assert.match(routes, /GET, POST \/login; POST \/logout/);
  assert.match(routes, /GET {2}\/jobs\/ID +a job's page/);
  assert.match(routes, /\/metrics/);
  for (const route of ['/healthz', '/jobs', '/badge/OWNER/NAME.svg'])
    assert.ok(routes.includes(` ${route}`), `${route} in --help`);
  // Every GET route it names answers on a running server (signed out: a page, a 401, never a 404).
  for (const route of ['/', '/login', '/healthz', '/jobs', '/metrics', '/badge/octo/site.svg']) {
    const res = await fetch(server.url + route, { headers: { Accept: 'text/html' } });
    assert.not.equal(res.status, 404, `${route}: ${res.status}`);
    await res.arrayBuffer();
  }
  const logout = await fetch(`${server.url}/logout`, {
    method: 'POST',
    redirect: 'manual',
    headers: { Origin: server.url },
  });
  assert.is(logout.status, 303);
});

test('the Debian layout run by hand: an unset SHIPKIT_WEBHOOK_SECRET says it is in hook-server.env beside the config and how to load it; the command it gives starts hook-server as that user', async () => {
  const account = await rootBuildUser(
    "the env file belongs to the unit's group and the command runs hook-server as its user: needs root",
  );
  if (!account) return;
  const base = tmpDir('shipkit-debenv-');
  chmodSync(base, 0o755);
  const etc = path.join(base, 'etc');
  mkdirSync(etc);
  const data = path.join(base, 'data');
  const config = path.join(etc, 'shipkit.yml');
  writeFileSync(
    config,
    `listen: 127.0.0.1:0\ndata: ${data}\nsecret: env:SHIPKIT_WEBHOOK_SECRET\ntoken: env:SHIPKIT_TOKEN\nrepos: {}\n`,
  );
  const envFile = path.join(etc, 'hook-server.env');
  const secret = randomUUID();
  writeFileSync(envFile, `SHIPKIT_WEBHOOK_SECRET=${secret}\nSHIPKIT_TOKEN=${randomUUID()}\n`, { mode: 0o640 });
  const gid = Number((await runCommand('id', ['-g', account.user])).stdout.trim());
  chownSync(envFile, 0, gid);

  const unset = { SHIPKIT_WEBHOOK_SECRET: undefined, SHIPKIT_TOKEN: undefined };
  const r = await runScript('hook-server', ['--config', config], { env: unset, cwd: base });
  assert.is(r.exitCode, 2, r.stderr);
  const runAs = `runuser -u ${account.user} -- sh -c 'set -a; . ${envFile}; set +a; exec hook-server --config ${config}'`;
  assert.is(
    r.stderr.trim(),
    `error: ${config}: secret: environment variable SHIPKIT_WEBHOOK_SECRET is not set or empty. It is set in ${envFile}, which only the hook-server systemd unit loads: ` +
      `start that (systemctl start hook-server), or, without systemd (a container, WSL), load the file first: set -a; . ${envFile}; set +a — as the user the unit runs as, so that what hook-server writes stays that user's: ${runAs}.`,
  );
  assert.not.ok(r.stderr.includes(secret), 'the value is never printed');
  assert.equal(readdirSync(base).sort(), ['etc'], 'nothing written');

  // The command it gives, as given (hook-server on the PATH, as the package puts it there).
  mkdirSync(data);
  chownSync(data, account.uid, gid);
  const bin = path.join(base, 'bin');
  mkdirSync(bin);
  writeFileSync(path.join(bin, 'hook-server'), `#!/bin/sh\nexec ${scriptCommand('hook-server').join(' ')} "$@"\n`, {
    mode: 0o755,
  });
  const child = spawn('sh', ['-c', runAs], {
    cwd: base,
    detached: true,
    env: { ...process.env, ...unset, PATH: `${bin}:${process.env.PATH}` },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  try {
    await waitFor(() => /listening on http/.test(out) || child.exitCode !== null, {
      timeoutMs: 30_000,
      what: 'hook-server started by the printed command',
    });
    assert.match(out, /listening on http/);
    assert.is(statSync(path.join(data, 'journal')).uid, account.uid, "its files are the unit user's");
  } finally {
    try {
      process.kill(-child.pid!, 'SIGTERM');
    } catch {
      /* gone */
    }
    await exited;
  }
});

test('without token: the read API is off (404); a GitLab release hook queues a release job', async () => {
  const quiet = tmpDir();
  const noToken = await startScript(
    'hook-server',
    ['--config', writeConfig(quiet, { repos: { 'group/app': {} }, token: false }), '--listen', '127.0.0.1:0'],
    { env },
  );
  try {
    const jobs = await fetch(`${noToken.url}/jobs`, { headers: auth });
    assert.is(jobs.status, 404);
    assert.is((await jobs.json()).error, 'read API is off');
    const project = { path_with_namespace: 'group/app', git_http_url: 'https://gitlab.example.com/group/app.git' };
    const release = await post(
      `${noToken.url}/`,
      JSON.stringify({ object_kind: 'release', action: 'create', tag: 'v3.0.0', project }),
      {
        'Content-Type': 'application/json',
        'X-Gitlab-Event': 'Release Hook',
        'X-Gitlab-Token': SECRET,
        'X-Gitlab-Event-UUID': randomUUID(),
      },
    );
    assert.is(release.status, 202);
    await waitFor(() => readRuns(quiet).done.includes(release.json.job), { what: 'the release job' });
    const argv = readFileSync(path.join(quiet, `argv-${release.json.job}.txt`), 'utf8')
      .trim()
      .split('\n');
    assert.equal(argv.slice(0, 3), ['group/app', '--tag', 'v3.0.0']);
  } finally {
    assert.is(await noToken.stop(), 0);
  }
});

test('first run: no config → ./.shipkit/shipkit.yml with a generated secret and token (0600), printed once', async () => {
  if (existsSync('/etc/shipkit/shipkit.yml')) {
    console.log('skipped: /etc/shipkit/shipkit.yml exists on this machine, so there is no first run');
    return;
  }
  const cwd = tmpDir();
  const first = await startScript('hook-server', ['--listen', '127.0.0.1:0'], {
    cwd,
    env: { SHIPKIT_CONFIG: undefined },
  });
  try {
    await firstRun(cwd, first);
  } finally {
    await first.stop();
  }
  const secret = readFileSync(path.join(cwd, '.shipkit/webhook-secret'), 'utf8').trim();
  const second = await startScript('hook-server', ['--listen', '127.0.0.1:0'], {
    cwd,
    env: { SHIPKIT_CONFIG: undefined },
  });
  assert.not.ok(second.output().includes(secret), 'not printed again');
  assert.is((await deliverGithub(second.url, 'ping', pingPayload('me/repo'), secret)).status, 200);
  assert.is(await second.stop(), 0);
});

async function firstRun(cwd: string, first: Server): Promise<void> {
  await waitFor(() => /will not be printed again/.test(first.output()), { what: 'the first-run message' });
  const secret = readFileSync(path.join(cwd, '.shipkit/webhook-secret'), 'utf8').trim();
  const token = readFileSync(path.join(cwd, '.shipkit/token'), 'utf8').trim();
  assert.match(secret, /^[0-9a-f]{64}$/);
  assert.ok(first.output().includes(secret));
  assert.ok(first.output().includes(token));
  assert.ok(
    first.output().includes(`Status page: ${first.url}/ in a browser (log in with the read token).`),
    first.output(),
  );
  for (const f of ['webhook-secret', 'token', 'shipkit.yml'])
    assert.is(statSync(path.join(cwd, '.shipkit', f)).mode & 0o777, 0o600, f);
  // The one file has no shipkit.example.yml beside it; the checkout has.
  const example = scriptsFromBundle()
    ? 'run shipkit example-config.'
    : `${path.join(ROOT, 'shipkit.example.yml')} (or run shipkit example-config).`;
  assert.match(readFileSync(path.join(cwd, '.shipkit/shipkit.yml'), 'utf8'), `\n# Every key, explained: ${example}\n`);
  const ping = await deliverGithub(first.url, 'ping', pingPayload('me/repo'), secret);
  assert.is(ping.status, 200);
  const jobs = await fetch(`${first.url}/jobs`, { headers: { Authorization: `Bearer ${token}` } });
  assert.is(jobs.status, 200);
  assert.is(await first.stop(), 0);
}

test.run();
