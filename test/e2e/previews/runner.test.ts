// A preview per pull request, end to end with real parts: hook-server as a child process takes
// signed GitHub pull_request events, builds the head of a real git repo, runs it under the real
// launchfit and routes pr-N.preview.test to it through a real nginx. A push switches it with no
// failed request; a fork waits for an approval bound to its head SHA; closing tears it all down.
import { randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, statSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { stopPreview } from '../../../lib/previews/launch.ts';
import { deliverGithub } from '../../fixtures/hooks/deliveries.ts';
import { fromFork, githubPullRequest } from '../../fixtures/hooks/pull-requests.ts';
import { getThrough, nginxBlock, startPreviewNginx, type PreviewNginx } from '../../fixtures/previews/nginx.ts';
import { previewUserEnv } from '../../fixtures/previews/as-user.ts';
import { processesOf } from '../../fixtures/previews/processes.ts';
import { makeBareRepo, runScript, startScript, tmpDir, waitFor, type Server } from '../../_helpers/common.ts';

const SECRET = `secret-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const PROD = `prod-${randomUUID()}`;
const SERVER = readFileSync(path.join(import.meta.dirname, '../../fixtures/previews/site/server.cjs'), 'utf8');
const dir = tmpDir('shipkit-previews-');
// launchfit's control socket is DATA/previews/REPO/pr-N/host/.launchfit/control.sock, and a socket
// path has 107 bytes at most: DATA is a short folder of /tmp itself, not one in the run's TMPDIR.
const data = mkdtempSync('/tmp/skp-');
let nginx: PreviewNginx;
let server: Server;
let repo: Awaited<ReturnType<typeof makeBareRepo>>;
const config = path.join(dir, 'shipkit.yml');

const cgroupsMissing =
  process.getuid?.() !== 0
    ? 'not root'
    : !existsSync('/sys/fs/cgroup/memory') && !existsSync('/sys/fs/cgroup/cgroup.controllers')
      ? 'no cgroup filesystem'
      : undefined;
const host = (pr: number) => `pr-${pr}.preview.test`;
const through = (pr: number, urlPath = '/') => getThrough(nginx.port, urlPath, host(pr));
const folder = (pr: number) => path.join(data, 'previews', 'octo__site', `pr-${pr}`);

/** GitHub's pull_request example for octo/site, its head the given commit of the test repo. */
function event(
  action: string,
  pr: number,
  sha: string,
  over: { fork?: string; association?: string; repo?: string; sender?: string } = {},
) {
  let payload = githubPullRequest(action, { repo: over.repo ?? 'octo/site' });
  if (over.sender) payload.sender.login = over.sender;
  if (over.fork) payload = fromFork(payload, over.fork);
  payload.number = pr;
  payload.pull_request.number = pr;
  payload.pull_request.head.sha = sha;
  payload.pull_request.head.repo.clone_url = `file://${repo.bare}`;
  payload.pull_request.author_association = over.association ?? 'OWNER';
  return payload;
}
const deliver = (payload: unknown) => deliverGithub(server.url, 'pull_request', payload, SECRET);

test.before(async () => {
  nginx = await startPreviewNginx();
  repo = await makeBareRepo(dir, 'site', { 'server.cjs': SERVER, 'VERSION.txt': 'v1\n' });
  writeFileSync(
    config,
    [
      'listen: 127.0.0.1:0',
      `data: ${data}`,
      'secret: env:HOOK_SECRET',
      'token: env:HOOK_TOKEN',
      'repos:',
      '  octo/site:',
      `    url: file://${repo.bare}`,
      '    steps: [pull, compile]',
      '    compile: echo "built $SHIPKIT_PR"',
      '    env: { PROD_TOKEN: env:PROD_TOKEN }',
      '    previews:',
      '      domain: preview.test',
      ...nginxBlock(nginx),
      '      start: node server.cjs',
      '      health: /',
      '      env: { API_URL: https://staging.example.com }',
      // A second repo whose previews have a memory limit, on their own host names.
      '  octo/heavy:',
      `    url: file://${repo.bare}`,
      '    steps: [pull]',
      '    previews:',
      '      domain: heavy.test',
      ...nginxBlock(nginx),
      '      start: node server.cjs',
      '      limits: { memory: 96M }',
      '',
    ].join('\n'),
  );
  server = await startScript('hook-server', ['--config', config], {
    env: {
      ...(await previewUserEnv([dir, data])),
      HOOK_SECRET: SECRET,
      HOOK_TOKEN: TOKEN,
      PROD_TOKEN: PROD,
      SHIPKIT_PREVIEWS_SWEEP_MS: '1000',
    },
  });
});
test.after(async () => {
  await server?.stop('SIGTERM');
  // Previews outlive hook-server by design: a test that failed half-way ends its own.
  for (const slug of ['octo__site', 'octo__heavy']) {
    const root = path.join(data, 'previews', slug);
    for (const name of existsSync(root) ? readdirSync(root) : []) await stopPreview(path.join(root, name));
  }
  rmSync(data, { recursive: true, force: true });
  await nginx?.stop();
});

test('opened: built, run under launchfit, routed through nginx; the app gets previews.env only', async () => {
  const answer = await deliver(event('opened', 2, repo.first));
  assert.is(answer.status, 202, JSON.stringify(answer.json));
  assert.equal([answer.json.preview, answer.json.state], ['pr-2', 'building']);
  await waitFor(async () => (await through(2)).body === 'v1\n', { timeoutMs: 60_000, what: 'pr-2 through nginx' });
  // nginx's old worker may still answer a request or two after the reload (docs/previews.md).
  const env = await waitFor(
    async () => {
      const r = await through(2, '/env');
      return r.status === 200 ? JSON.parse(r.body) : undefined;
    },
    { what: '/env through nginx' },
  );
  assert.ok(env.names.includes('API_URL'), env.names.join(' '));
  assert.ok(env.names.includes('SHIPKIT_PREVIEW'));
  assert.not.ok(env.names.includes('PROD_TOKEN'), "the repo's own env: never reaches a preview");
  assert.not.ok(env.names.includes('HOOK_SECRET'));
  assert.not.ok(env.names.includes('HOOK_TOKEN'));
  assert.is(env.url, `http://pr-2.preview.test:${nginx.port}/`);
  assert.is(env.pr, '2');
  // Never as root: under root (as on CI) the build and the app run as a uid of the preview's own,
  // from the default range, and its folder is root:that group 0750 (the next test: no other enters).
  const root = process.getuid?.() === 0;
  if (root) {
    assert.ok(env.uid >= 0x7000_0000 && env.uid <= 0x7000_ffff, `the app runs as ${env.uid}`);
    const info = statSync(folder(2));
    assert.equal([info.uid, info.gid, info.mode & 0o777], [0, env.uid, 0o750], "the preview's folder is its own");
  } else assert.is(env.uid, process.getuid?.(), "not root: hook-server's own user");
  assert.is(statSync(path.join(folder(2), 'src')).uid, env.uid, "the build ran as the preview's uid");
  // Live once nginx's workers from before the route's reload have stopped (lib/previews/nginx-workers.ts):
  // the route may answer a moment before.
  const mine = await waitFor(
    async () => {
      const listed = await fetch(`${server.url}/previews`, { headers: { Authorization: `Bearer ${TOKEN}` } });
      const json = await listed.json();
      const found = json.previews.find((p: { pr: number }) => p.pr === 2);
      return found?.state === 'live' ? found : undefined;
    },
    { timeoutMs: 10_000, what: 'pr-2 listed as live' },
  );
  assert.equal([mine.name, mine.state, mine.head], ['pr-2', 'live', repo.first]);
});

test('a push switches the preview with no failed request through nginx', async () => {
  const second = await repo.commit({ 'VERSION.txt': 'v2\n' });
  let failed = 0;
  let sent = 0;
  let going = true;
  const load = (async () => {
    while (going) {
      sent++;
      const r = await through(2).catch(() => ({ status: 0, body: '' }));
      if (r.status !== 200) failed++;
    }
  })();
  const answer = await deliver(event('synchronize', 2, second));
  assert.is(answer.status, 202);
  await waitFor(async () => (await through(2)).body === 'v2\n', { timeoutMs: 60_000, what: 'v2 through nginx' });
  going = false;
  await load;
  assert.ok(sent > 10, `requests sent: ${sent}`);
  assert.is(failed, 0, `${failed} of ${sent} requests failed during the switch`);
});

test('a fork waits for an approval bound to its head; nothing is built until then', async () => {
  const answer = await deliver(event('opened', 3, repo.first, { fork: 'mallory/site', association: 'CONTRIBUTOR' }));
  assert.is(answer.status, 202);
  assert.is(answer.json.state, 'waiting for approval');
  assert.match(answer.json.reason, /shipkit previews approve octo\/site#3/);
  await new Promise((r) => setTimeout(r, 1000));
  assert.not.ok(existsSync(path.join(folder(3), 'src')), 'nothing built');
  assert.is((await through(3)).status, 404);
});

/** Under root: preview `pr`'s uid is not `other`'s, and cannot list or read anything in its folder. */
async function otherPreviewShutOut(pr: number, other: number): Promise<void> {
  if (process.getuid?.() !== 0)
    return console.log("  (not root: previews share hook-server's user; no uid of their own)");
  // nginx's old worker may answer a request or two without the newest route (docs/previews.md).
  const uidOf = (n: number) =>
    waitFor(
      async () => {
        const r = await through(n, '/env');
        return r.status === 200 ? (JSON.parse(r.body).uid as number) : undefined;
      },
      { what: `pr-${n}'s /env` },
    );
  const [mine, theirs] = [await uidOf(pr), await uidOf(other)];
  assert.is.not(mine, theirs, 'each preview has a uid of its own');
  const as = { uid: mine, gid: mine, encoding: 'utf8' as const, stdio: 'pipe' as const };
  for (const target of [folder(other), path.join(folder(other), 'src', 'VERSION.txt')]) {
    const error = (() => {
      try {
        execFileSync('cat', [target], as);
      } catch (e) {
        return String((e as { stderr?: string }).stderr);
      }
    })();
    assert.match(error ?? 'read', /Permission denied/, `pr-${pr}'s uid reads ${target}`);
  }
  execFileSync('ls', [path.join(folder(pr), 'src')], as); // its own: yes
}

/** The preview's record as GET /previews shows it. */
async function recordOf(pr: number) {
  const res = await fetch(`${server.url}/previews`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  return (await res.json()).previews.find((p: { pr: number }) => p.pr === pr);
}

const previews = (...args: string[]) =>
  runScript('shipkit', ['previews', ...args, '--config', config, '--url', server.url], { env: { HOOK_TOKEN: TOKEN } });

test('`shipkit previews approve` builds the fork head it names; its next push waits again', async () => {
  const listed = await previews('list');
  assert.is(listed.exitCode, 0, listed.stderr);
  assert.match(listed.stdout, /pr-3 .*waiting for approval/);
  const approved = await previews('approve', 'octo/site#3');
  assert.is(approved.exitCode, 0, approved.stderr);
  await waitFor(async () => (await through(3)).body === 'v1\n', {
    timeoutMs: 60_000,
    what: 'pr-3 through nginx',
  }).catch(async (error) => {
    throw new Error(`${error.message}: ${JSON.stringify(await recordOf(3))}`, { cause: error });
  });
  await otherPreviewShutOut(3, 2);
  const third = await repo.commit({ 'VERSION.txt': 'v3\n' });
  const pushed = await deliver(event('synchronize', 3, third, { fork: 'mallory/site', association: 'CONTRIBUTOR' }));
  assert.equal([pushed.status, pushed.json.state], [202, 'waiting for approval']);
  await new Promise((r) => setTimeout(r, 1000));
  assert.is((await through(3)).body, 'v1\n', 'the approved head still serves; the new one is not built');
  const bad = await previews('approve', 'octo/site#0');
  assert.is(bad.exitCode, 2, bad.stderr);
  const unknown = await previews('rm', 'octo/site#77');
  assert.is(unknown.exitCode, 1, unknown.stderr);
  const removed = await previews('rm', 'octo/site#3');
  assert.is(removed.exitCode, 0, removed.stderr);
  await waitFor(async () => (await through(3)).status === 404, { what: 'pr-3 gone' });
});

test("the label preview approves a fork's head when a maintainer sets it, not when its author does", async () => {
  const fork = { fork: 'mallory/site', association: 'CONTRIBUTOR' };
  const opened = await deliver(event('opened', 5, repo.first, fork));
  assert.is(opened.json.state, 'waiting for approval');
  const labeled = (sender: string) => {
    const payload = event('labeled', 5, repo.first, { ...fork, sender });
    payload.label = { ...payload.label, name: 'preview' };
    payload.pull_request.user.login = 'mallory';
    return deliver(payload);
  };
  const byAuthor = await labeled('mallory');
  assert.equal(
    [byAuthor.status, byAuthor.json.ignored],
    [200, 'pull request #5 labeled: the label preview was set by someone not trusted'],
  );
  const byMaintainer = await labeled('maintainer');
  assert.equal([byMaintainer.status, byMaintainer.json.state], [202, 'building']);
  await waitFor(async () => (await through(5)).body === 'v1\n', { timeoutMs: 60_000, what: 'pr-5 through nginx' });
  assert.is((await previews('rm', 'octo/site#5')).exitCode, 0);
});

test('a preview past its memory limit is killed, failed and says so; the other preview keeps serving', async () => {
  if (cgroupsMissing) return console.log(`previews-runner: memory limit skipped: ${cgroupsMissing}`);
  const answer = await deliver(event('opened', 40, repo.first, { repo: 'octo/heavy' }));
  assert.equal([answer.status, answer.json.state], [202, 'building']);
  const heavy = (urlPath: string) => getThrough(nginx.port, urlPath, 'pr-40.heavy.test');
  await waitFor(async () => (await heavy('/')).body === 'v1\n', { timeoutMs: 60_000, what: 'pr-40 through nginx' });
  // The app allocates until the kernel kills it (asked until nginx's new worker answers).
  await waitFor(async () => (await heavy('/grow').catch(() => ({ body: '' }))).body === 'growing\n', {
    what: '/grow answered',
  });
  const failed = await waitFor(
    async () => {
      const r = await fetch(`${server.url}/previews`, { headers: { Authorization: `Bearer ${TOKEN}` } });
      return (await r.json()).previews.find((p: { pr: number; state: string }) => p.pr === 40 && p.state === 'failed');
    },
    { timeoutMs: 30_000, what: 'pr-40 failed' },
  ).catch((error) => {
    throw new Error(`${error.message}\n${server.output().slice(-3000)}`, { cause: error });
  });
  assert.match(failed.reason, /killed over its memory limit \(96 MB\)/);
  assert.is((await through(2)).body, 'v2\n', 'pr-2 serves on');
});

test('closed: process, route and folder gone', async () => {
  assert.ok(processesOf(folder(2)).length, 'pr-2 runs');
  const answer = await deliver(event('closed', 2, repo.first));
  assert.is(answer.status, 202);
  await waitFor(() => !existsSync(folder(2)), { timeoutMs: 30_000, what: 'the folder removed' });
  // nginx's old worker may answer one more request (502: the app is gone) after the reload.
  await waitFor(async () => (await through(2)).status === 404, { what: 'pr-2 answered 404' });
  assert.not.ok(existsSync(path.join(nginx.domainDir, 'pr-2.conf')));
  assert.equal(processesOf(folder(2)), [], 'its app ended');
  const never = await deliver(event('closed', 99, repo.first));
  assert.equal(
    [never.status, never.json.ignored],
    [200, 'pull request #99 closed: no preview of octo/site#99 is open'],
  );
});

test.run();
