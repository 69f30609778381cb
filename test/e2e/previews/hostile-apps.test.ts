// Previews whose code misbehaves, with real processes (hook-server, builds of a real git repo,
// the launchfit host, a real nginx, a fake forge on loopback): apps that bind 0.0.0.0 or another
// preview's port fail with their own words and a failure status linking to the log; a fork's
// build and app that print their environment find no secret of the repo's or hook-server's; 50
// pull requests opened at once with `max: 10` leave ten live and say so of the rest.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { stopPreview } from '../../../lib/previews/launch.ts';
import { deliverGithub } from '../../fixtures/hooks/deliveries.ts';
import { fromFork, githubPullRequest } from '../../fixtures/hooks/pull-requests.ts';
import { previewUserEnv } from '../../fixtures/previews/as-user.ts';
import { startForge, type FakeForge } from '../../fixtures/previews/forge-api.ts';
import { getThrough, nginxBlock, startPreviewNginx, type PreviewNginx } from '../../fixtures/previews/nginx.ts';
import { killProcessesUsing } from '../../fixtures/processes.ts';
import { freePort, makeBareRepo, startScript, tmpDir, waitFor, type Server } from '../../_helpers/common.ts';

const SECRET = `secret-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const FORGE_TOKEN = `forge-${randomUUID()}`;
const DEPLOY_TOKEN = `deploy-${randomUUID()}`;
const SERVER = readFileSync(path.join(import.meta.dirname, '../../fixtures/previews/site/server.cjs'), 'utf8');
const dir = tmpDir('shipkit-hostile-apps-');
// launchfit's control socket path has 107 bytes at most: DATA is a short folder of /tmp itself.
const data = mkdtempSync('/tmp/ska-');
const config = path.join(dir, 'shipkit.yml');
let nginx: PreviewNginx;
let server: Server;
let forge: FakeForge;
let repo: Awaited<ReturnType<typeof makeBareRepo>>;
let publicUrl: string;

const site = (pr: number) => getThrough(nginx.port, '/', `pr-${pr}.preview.test`);
const many = (pr: number) => getThrough(nginx.port, `/many/pr-${pr}/`, 'site.test');

function event(name: string, action: string, pr: number, sha: string, fork?: string) {
  let payload = githubPullRequest(action, { repo: name });
  if (fork) payload = fromFork(payload, fork);
  payload.number = pr;
  payload.pull_request.number = pr;
  payload.pull_request.head.sha = sha;
  payload.pull_request.head.repo.clone_url = `file://${repo.bare}`;
  payload.pull_request.author_association = fork ? 'CONTRIBUTOR' : 'OWNER';
  return payload;
}
const deliver = (payload: unknown) => deliverGithub(server.url, 'pull_request', payload, SECRET);
const authed = { Authorization: `Bearer ${TOKEN}` };

interface View {
  repo: string;
  pr: number;
  state: string;
  reason: string | null;
}
async function records(name: string): Promise<View[]> {
  const res = await fetch(`${server.url}/previews`, { headers: authed });
  assert.is(res.status, 200);
  return ((await res.json()).previews as View[]).filter((r) => r.repo === name);
}
async function waitState(name: string, pr: number, state: string): Promise<View> {
  let last: View | undefined;
  return (await waitFor(
    async () => {
      last = (await records(name)).find((r) => r.pr === pr);
      return last?.state === state ? last : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 100, what: `${name}#${pr} ${state}` },
  ).catch((error) => {
    throw new Error(`${error.message}; last: ${JSON.stringify(last)}\n${server.output().slice(-3000)}`, {
      cause: error,
    });
  })) as View;
}

test.before(async () => {
  const env = await previewUserEnv([dir, data]);
  [nginx, forge] = await Promise.all([startPreviewNginx(), startForge(FORGE_TOKEN)]);
  repo = await makeBareRepo(dir, 'site', {
    'server.cjs': SERVER,
    'VERSION.txt': 'v1\n',
    'build.sh': 'echo built\n',
  });
  const port = await freePort();
  publicUrl = `http://127.0.0.1:${port}`;
  writeFileSync(
    config,
    [
      `listen: 127.0.0.1:${port}`,
      `public_url: ${publicUrl}`,
      `data: ${data}`,
      'secret: env:HOOK_SECRET',
      'token: env:HOOK_TOKEN',
      'report: github',
      'report_token: env:FORGE_TOKEN',
      `report_api: http://127.0.0.1:${forge.port}`,
      'repos:',
      '  octo/site:',
      `    url: file://${repo.bare}`,
      '    steps: [pull, compile]',
      // The build runs the pull request's own script: a fork's code.
      '    compile: sh build.sh',
      '    env: { DEPLOY_TOKEN: env:DEPLOY_TOKEN }',
      '    previews:',
      '      domain: preview.test',
      ...nginxBlock(nginx),
      '      start: node server.cjs',
      '      env: { API_URL: https://staging.example.com }',
      '  octo/many:',
      `    url: file://${repo.bare}`,
      '    steps: [pull]',
      '    previews:',
      '      path: /many/',
      '      max: 10',
      `      nginx: { dir: ${nginx.pathDir}, test: ${nginx.test}, reload: ${nginx.reload} }`,
      '      start: node server.cjs',
      '',
    ].join('\n'),
  );
  server = await startScript('hook-server', ['--config', config], {
    env: { ...env, HOOK_SECRET: SECRET, HOOK_TOKEN: TOKEN, FORGE_TOKEN, DEPLOY_TOKEN },
  });
});

test.after(async () => {
  await server?.stop('SIGTERM');
  for (const slug of ['octo__site', 'octo__many']) {
    const root = path.join(data, 'previews', slug);
    for (const name of existsSync(root) ? readdirSync(root) : []) await stopPreview(path.join(root, name));
  }
  await killProcessesUsing(data);
  rmSync(data, { recursive: true, force: true });
  await Promise.all([nginx?.stop(), forge?.close()]);
});

test("apps that bind 0.0.0.0 or another preview's port: failed in their words, a failure status linking to the log", async () => {
  assert.is((await deliver(event('octo/site', 'opened', 1, repo.first))).status, 202);
  await waitState('octo/site', 1, 'live');
  const conf = readFileSync(path.join(nginx.domainDir, 'pr-1.conf'), 'utf8');
  const taken = Number(/proxy_pass http:\/\/127\.0\.0\.1:(\d+)/.exec(conf)?.[1]);
  assert.ok(taken > 0, conf);
  const bind = (host: string, port: string) =>
    `require('node:http').createServer((q, s) => s.end('mine')).listen(${port}, ${JSON.stringify(host)});\n`;
  const wide = await repo.commit({ 'server.cjs': bind('0.0.0.0', 'Number(process.env.PORT)') });
  const squat = await repo.commit({ 'server.cjs': bind('127.0.0.1', String(taken)) });
  assert.is((await deliver(event('octo/site', 'opened', 2, wide))).status, 202);
  assert.is((await deliver(event('octo/site', 'opened', 3, squat))).status, 202);
  for (const pr of [2, 3]) {
    const failed = await waitState('octo/site', pr, 'failed');
    assert.match(failed.reason!, /EADDRINUSE/, `pr-${pr}: ${failed.reason}`);
    assert.not.ok(existsSync(path.join(nginx.domainDir, `pr-${pr}.conf`)), `no route for pr-${pr}`);
    const link = `${publicUrl}/previews/log?repo=octo%2Fsite&pr=${pr}`;
    const status = await waitFor(
      () =>
        forge.seen.find(
          (s) => s.path.includes('/statuses/') && s.body.state === 'failure' && s.body.target_url === link,
        ),
      { what: `a failure status for pr-${pr} linking to ${link}; seen: ${JSON.stringify(forge.seen.slice(-4))}` },
    );
    assert.is(status!.body.context, 'shipkit/preview');
    const log = await fetch(link, { headers: authed });
    assert.is(log.status, 200);
    assert.match(
      await log.text(),
      new RegExp(`octo/site#${pr} \\(pr-${pr}\\) at [0-9a-f]{40}: failed: [\\s\\S]*EADDRINUSE`),
    );
    assert.is((await fetch(link)).status, 401, 'the log needs the token or a login');
    const comment = forge.seen.filter((s) => String(s.body?.body ?? '').includes(`**Preview \`pr-${pr}\`**`)).at(-1);
    assert.match(
      comment?.body.body ?? '',
      new RegExp(`See \\[the build log\\]\\(<${link.replace(/[?.]/g, '\\$&')}>\\)`),
    );
  }
  assert.is((await site(1)).body, 'v1\n', 'pr-1 serves on, its port still its own');
});

test("a fork's build and app that print their environment find no secret of the repo's or of hook-server's", async () => {
  const nosy = await repo.commit({
    'build.sh': 'echo "== build env"; env | sort; echo "== end"\n',
    'server.cjs': SERVER, // the commits before broke it
  });
  const opened = await deliver(event('octo/site', 'opened', 4, nosy, 'mallory/site'));
  assert.is(opened.status, 202);
  await waitState('octo/site', 4, 'waiting for approval');
  const approve = await fetch(`${server.url}/previews/approve`, {
    method: 'POST',
    headers: { ...authed, 'Content-Type': 'application/json' },
    body: JSON.stringify({ repo: 'octo/site', pr: 4 }),
  });
  assert.is(approve.status, 200, await approve.clone().text());
  await waitState('octo/site', 4, 'live');
  const log = await (await fetch(`${server.url}/previews/log?repo=octo/site&pr=4`, { headers: authed })).text();
  assert.match(log, /== build env[\s\S]*SHIPKIT_PREVIEW=1[\s\S]*== end/, 'the build printed its environment');
  // nginx's old worker may answer a request or two after the reload that added the route.
  const env = (await waitFor(async () => {
    const answer = await getThrough(nginx.port, '/env', 'pr-4.preview.test');
    return answer.status === 200 ? (JSON.parse(answer.body!) as { names: string[] }) : undefined;
  }))!;
  for (const secret of [SECRET, TOKEN, FORGE_TOKEN, DEPLOY_TOKEN]) {
    assert.not.ok(log.includes(secret), 'a secret in the build log');
    assert.not.ok(server.output().includes(secret), "a secret in hook-server's output");
  }
  for (const name of ['DEPLOY_TOKEN', 'HOOK_SECRET', 'HOOK_TOKEN', 'FORGE_TOKEN']) {
    assert.not.match(log, new RegExp(`^${name}=`, 'm'), `${name} in the build's environment`);
    assert.not.ok(env.names.includes(name), `${name} in the app's environment`);
  }
  assert.ok(env.names.includes('API_URL'), 'previews.env is given');
});

test('50 pull requests opened at once with max: 10: ten live, the rest pushed out and said so, no crash', async () => {
  const prs = Array.from({ length: 50 }, (_, i) => 101 + i);
  const answers = await Promise.all(prs.map((pr) => deliver(event('octo/many', 'opened', pr, repo.first))));
  assert.equal(
    answers.map((a) => a.status),
    prs.map(() => 202),
  );
  const settled = await waitFor(
    async () => {
      const mine = await records('octo/many');
      const done = mine.length === 50 && mine.every((r) => r.state === 'live' || r.state === 'torn down');
      return done ? mine : undefined;
    },
    { timeoutMs: 300_000, intervalMs: 500, what: 'the 50 previews of octo/many settled' },
  ).catch(async (error) => {
    const states = (await records('octo/many')).map((r) => `${r.pr}:${r.state}`).join(' ');
    throw new Error(`${error.message}: ${states}\n${server.output().slice(-2000)}`, { cause: error });
  });
  const live = settled!.filter((r) => r.state === 'live');
  const gone = settled!.filter((r) => r.state === 'torn down');
  assert.is(live.length, 10, live.map((r) => r.pr).join(' '));
  for (const r of gone) assert.match(r.reason!, /pushed out by max/, `pr-${r.pr}`);
  assert.equal(readdirSync(nginx.pathDir).sort(), live.map((r) => `pr-${r.pr}.conf`).sort());
  // nginx's old worker may answer a request or two after the last reload.
  for (const r of live)
    await waitFor(async () => (await many(r.pr)).body === 'v1\n', { what: `pr-${r.pr} through nginx` });
  assert.is((await fetch(`${server.url}/healthz`)).status, 200);
  const listed = readdirSync(path.join(data, 'previews', '.launchfit-host', 'roster')).filter((f) =>
    f.startsWith('octo__many.'),
  );
  assert.is(listed.length, 10, 'the launchfit host lists the ten live ones only');
});

test.run();
