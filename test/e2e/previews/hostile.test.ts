// Previews against hostile inputs and faults (issue 56), with real processes: hook-server as a
// child process, builds of a real git repo, launchfit, a real nginx and a fake forge API on
// loopback. Forged deliveries write nothing; a sender's branch and title never become a name, a
// path or a raw control character; out-of-order pushes, a close for an unknown PR, `max`, a
// SIGKILL of hook-server mid-build and a broken nginx file of the user's end in a known state.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { previewUserEnv } from '../../fixtures/previews/as-user.ts';
import { launchfitHostsUnder, processesOf } from '../../fixtures/previews/processes.ts';
import { startForge, type FakeForge } from '../../fixtures/previews/forge-api.ts';
import { stopPreview } from '../../../lib/previews/launch.ts';
import { deliverGithub, post } from '../../fixtures/hooks/deliveries.ts';
import { githubPullRequest } from '../../fixtures/hooks/pull-requests.ts';
import { getThrough, startPreviewNginx, type PreviewNginx } from '../../fixtures/previews/nginx.ts';
import { killProcessesUsing } from '../../fixtures/processes.ts';
import { makeBareRepo, runScript, startScript, tmpDir, waitFor, type Server } from '../../_helpers/common.ts';

const SECRET = `secret-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const FORGE_TOKEN = `forge-${randomUUID()}`;
const SERVER = readFileSync(path.join(import.meta.dirname, '../../fixtures/previews/site/server.cjs'), 'utf8');
const ESC = '\x1b';
const dir = tmpDir('shipkit-hostile-');
// launchfit's control socket path has 107 bytes at most: DATA is a short folder of /tmp itself.
const data = mkdtempSync('/tmp/skh-');
const config = path.join(dir, 'shipkit.yml');
let nginx: PreviewNginx;
let server: Server;
let repo: Awaited<ReturnType<typeof makeBareRepo>>;
let forge: FakeForge;
let downForge: FakeForge;

const folderOf = (slug: string, pr: number) => path.join(data, 'previews', slug, `pr-${pr}`);
const siteThrough = (pr: number) => getThrough(nginx.port, '/', `pr-${pr}.preview.test`);
const maxThrough = (pr: number) => getThrough(nginx.port, `/max/pr-${pr}/`, 'site.test');

/** GitHub's pull_request example for `name`, its head a commit of the test repo; `over` changes the sender's text. */
function event(name: string, action: string, pr: number, sha: string, over: { ref?: string; title?: string } = {}) {
  const payload = githubPullRequest(action, { repo: name });
  payload.number = pr;
  payload.pull_request.number = pr;
  payload.pull_request.head.sha = sha;
  payload.pull_request.head.repo.clone_url = `file://${repo.bare}`;
  payload.pull_request.author_association = 'OWNER';
  if (over.ref !== undefined) payload.pull_request.head.ref = over.ref;
  if (over.title !== undefined) payload.pull_request.title = over.title;
  return payload;
}
const site = (action: string, pr: number, sha: string, over = {}) => event('octo/site', action, pr, sha, over);
const deliver = (payload: unknown, secret = SECRET) => deliverGithub(server.url, 'pull_request', payload, secret);

interface View {
  repo: string;
  pr: number;
  name: string;
  state: string;
  reason: string | null;
  head: string;
  live_sha: string | null;
}
async function records(): Promise<View[]> {
  const res = await fetch(`${server.url}/previews`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  assert.is(res.status, 200);
  return (await res.json()).previews;
}
const recordOf = async (name: string, pr: number) => (await records()).find((r) => r.repo === name && r.pr === pr);

/** Waits until the record of `name#pr` is in `state` (and `check` holds); a failure shows the record. */
async function waitState(name: string, pr: number, state: string, check: (r: View) => boolean = () => true) {
  let last: View | undefined;
  try {
    return (await waitFor(
      async () => {
        last = await recordOf(name, pr);
        return last?.state === state && check(last) ? last : undefined;
      },
      { timeoutMs: 45_000, intervalMs: 100, what: `${name}#${pr} ${state}` },
    ))!;
  } catch (error) {
    throw new Error(`${(error as Error).message}; last: ${JSON.stringify(last)}\n${server.output().slice(-3000)}`, {
      cause: error,
    });
  }
}

/** The one launchfit host runs while previews live, and lists exactly the live ones. */
async function hostListsLive(live: number): Promise<boolean> {
  const hosts = launchfitHostsUnder(data);
  const roster = path.join(data, 'previews', '.launchfit-host', 'roster');
  const listed = existsSync(roster) ? readdirSync(roster).filter((f) => f.endsWith('.json')).length : 0;
  return hosts.length === (live ? 1 : 0) && listed === live;
}

let userEnv: Record<string, string> = {};
const startServer = () =>
  startScript('hook-server', ['--config', config], {
    env: { ...userEnv, HOOK_SECRET: SECRET, HOOK_TOKEN: TOKEN, FORGE_TOKEN },
  });

test.before(async () => {
  userEnv = await previewUserEnv([dir, data]);
  [nginx, forge, downForge] = await Promise.all([
    startPreviewNginx(),
    startForge(FORGE_TOKEN),
    startForge(FORGE_TOKEN, 500),
  ]);
  repo = await makeBareRepo(dir, 'site', { 'server.cjs': SERVER, 'VERSION.txt': 'v1\n' });
  const nginxKeys = (dirOf: string, listen: boolean) => [
    '      nginx:',
    `        dir: ${dirOf}`,
    ...(listen ? [`        listen: 127.0.0.1:${nginx.port}`] : []),
    `        test: ${nginx.test}`,
    `        reload: ${nginx.reload}`,
  ];
  writeFileSync(
    config,
    [
      'listen: 127.0.0.1:0',
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
      // A commit with SLOW.txt compiles for 2 s: the window to kill hook-server in.
      '    compile: if [ -f SLOW.txt ]; then sleep 2; fi; echo built',
      '    previews:',
      '      domain: preview.test',
      ...nginxKeys(nginx.domainDir, true),
      '      start: node server.cjs',
      '  octo/max:',
      `    url: file://${repo.bare}`,
      `    report_api: http://127.0.0.1:${downForge.port}`,
      '    steps: [pull, compile]',
      '    compile: echo built',
      '    previews:',
      '      path: /max/',
      '      max: 2',
      ...nginxKeys(nginx.pathDir, false),
      '      start: node server.cjs',
      '',
    ].join('\n'),
  );
  server = await startServer();
});

test.after(async () => {
  await server?.stop('SIGTERM');
  // Previews outlive hook-server by design: end them, and anything a failed test left.
  for (const slug of ['octo__site', 'octo__max']) {
    const root = path.join(data, 'previews', slug);
    for (const name of existsSync(root) ? readdirSync(root) : []) await stopPreview(path.join(root, name));
  }
  await killProcessesUsing(data);
  rmSync(data, { recursive: true, force: true });
  await Promise.all([nginx?.stop(), forge?.close(), downForge?.close()]);
});

test('unsigned and forged pull_request events: 401, no record, no folder', async () => {
  const payload = site('opened', 40, repo.first);
  const forged = await deliver(payload, `not-${SECRET}`);
  assert.is(forged.status, 401, JSON.stringify(forged.json));
  const body = JSON.stringify(payload);
  const unsigned = await post(`${server.url}/hooks/github`, body, {
    'Content-Type': 'application/json',
    'X-GitHub-Event': 'pull_request',
    'X-GitHub-Delivery': randomUUID(),
  });
  assert.is(unsigned.status, 401, JSON.stringify(unsigned.json));
  // Signed right, then changed: the signature is of another body.
  const signed = await deliverGithub(server.url, 'pull_request', site('opened', 40, repo.first), SECRET, {
    headers: { 'X-Hub-Signature-256': `sha256=${'0'.repeat(64)}` },
  });
  assert.is(signed.status, 401);
  await new Promise((r) => setTimeout(r, 300));
  assert.is(await recordOf('octo/site', 40), undefined);
  assert.not.ok(existsSync(folderOf('octo__site', 40)));
  assert.is(forge.seen.length, 0, 'the forge heard nothing');
});

const HOSTILE_REF = `../../../etc;rm -rf /\n${ESC}]0;pwned\x07${'ü'.repeat(300)}/../x`;
const HOSTILE_TITLE = `../../x.conf; reboot\r\n${ESC}[31mred${ESC}[0m <img src=x onerror=alert(1)> @admin #1 ${'🚀'.repeat(40)}${'x'.repeat(300)}`;

/** Only pr-N.conf in the nginx folders, only pr-N folders (and key, the host's REPO.pr-N entries) under DATA/previews. */
function nothingElseWritten(extra: string[] = []) {
  for (const d of [nginx.domainDir, nginx.pathDir])
    for (const f of readdirSync(d)) assert.ok(/^pr-[0-9]+\.conf$/.test(f) || extra.includes(f), `${d}/${f}`);
  const root = path.join(data, 'previews');
  for (const entry of readdirSync(root, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    if (entry.name === 'key') continue;
    if (entry.name === '.launchfit-host') {
      for (const f of readdirSync(path.join(root, entry.name, 'roster')))
        assert.match(f, /^octo__(site|max)\.pr-[0-9]+\.json$/, `the host's roster: ${f}`);
      continue;
    }
    assert.ok(['octo__site', 'octo__max'].includes(entry.name), `DATA/previews/${entry.name}`);
    for (const f of readdirSync(path.join(root, entry.name))) assert.match(f, /^pr-[0-9]+$/, `${entry.name}/${f}`);
  }
}

const commentsOf = (pr: number) => forge.seen.filter((s) => s.path === `/repos/octo/site/issues/${pr}/comments`);

test('a hostile branch and title: still pr-1, DIR/pr-1.conf only, escaped in the one comment', async () => {
  const answer = await deliver(site('opened', 1, repo.first, { ref: HOSTILE_REF, title: HOSTILE_TITLE }));
  assert.is(answer.status, 202, JSON.stringify(answer.json));
  assert.equal([answer.json.preview, answer.json.state], ['pr-1', 'building']);
  await waitState('octo/site', 1, 'live');
  await waitFor(async () => (await siteThrough(1)).body === 'v1\n', { what: 'pr-1 through nginx' });
  assert.equal(readdirSync(nginx.domainDir), ['pr-1.conf']);
  nothingElseWritten();
  const v2 = await repo.commit({ 'VERSION.txt': 'v2\n' });
  const pushed = await deliver(site('synchronize', 1, v2, { ref: HOSTILE_REF, title: `${HOSTILE_TITLE}${ESC}c` }));
  assert.is(pushed.status, 202);
  await waitState('octo/site', 1, 'live', (r) => r.live_sha === v2);
  await waitFor(async () => (await siteThrough(1)).body === 'v2\n', { what: 'v2 through nginx' });
  const shown = await runScript(
    'shipkit',
    ['previews', 'show', 'octo/site#1', '--config', config, '--url', server.url],
    {
      env: { HOOK_TOKEN: TOKEN },
    },
  );
  assert.is(shown.exitCode, 0, shown.stderr);
  assert.match(shown.stdout, /pr-1/);
  assert.not.ok(shown.stdout.includes(ESC) || shown.stderr.includes(ESC), 'no raw ESC shown');
  // The forge: one comment made, edited after; the title inert.
  await waitFor(() => forge.seen.some((s) => s.method === 'PATCH'), { what: 'a comment edit' });
  assert.is(commentsOf(1).length, 1, JSON.stringify(commentsOf(1).map((s) => s.path)));
  for (const s of forge.seen.filter((s) => s.body?.body)) {
    const text: string = s.body.body;
    assert.not.ok(text.includes(ESC), 'no ESC in a comment');
    assert.not.ok(text.includes('<img'), 'no HTML in a comment');
    assert.not.ok(/x{301}/.test(text), 'the title is cut');
    assert.not.ok(/@admin/.test(text), 'no mention');
    assert.ok(text.includes('&lt;img'), text);
  }
});

test('synchronize out of order: the last delivered head is the one that goes live', async () => {
  const a = await repo.commit({ 'VERSION.txt': 'A\n' }); // older
  const b = await repo.commit({ 'VERSION.txt': 'B\n' }); // newer
  const first = await deliver(site('synchronize', 1, b));
  const second = await deliver(site('synchronize', 1, a));
  assert.equal([first.status, second.status], [202, 202]);
  // The runner cannot know the order: the event carries no time it reads. The last delivered wins.
  await waitState('octo/site', 1, 'live', (r) => r.live_sha === a && r.head === a);
  await waitFor(async () => (await siteThrough(1)).body === 'A\n', { what: 'A through nginx' });
  await new Promise((r) => setTimeout(r, 500));
  assert.is((await recordOf('octo/site', 1))!.live_sha, a, 'B did not win afterwards');
  assert.is(commentsOf(1).length, 1, 'still one comment after several pushes');
});

test('closed for a PR never seen: 200 ignored; reopened after teardown: built again', async () => {
  const never = await deliver(site('closed', 77, repo.first));
  assert.equal(
    [never.status, never.json.ignored],
    [200, 'pull request #77 closed: no preview of octo/site#77 is open'],
  );
  assert.is(await recordOf('octo/site', 77), undefined);
  const closed = await deliver(site('closed', 1, repo.first));
  assert.is(closed.status, 202);
  await waitState('octo/site', 1, 'torn down');
  await waitFor(() => !existsSync(folderOf('octo__site', 1)), { what: 'pr-1 folder gone' });
  assert.not.ok(existsSync(path.join(nginx.domainDir, 'pr-1.conf')));
  const again = await deliver(site('closed', 1, repo.first));
  assert.is(again.status, 200, 'closed twice: ignored');
  const reopened = await deliver(site('reopened', 1, repo.first));
  assert.equal([reopened.status, reopened.json.state], [202, 'building']);
  await waitState('octo/site', 1, 'live', (r) => r.live_sha === repo.first);
  await waitFor(async () => (await siteThrough(1)).body === 'v1\n', { what: 'pr-1 again through nginx' });
});

test("a broken nginx file of the user's: failed with nginx's words, the file kept, the others still answer", async () => {
  const mine = path.join(nginx.domainDir, 'zz-mine.conf');
  writeFileSync(mine, 'this is broken;\n');
  try {
    const answer = await deliver(site('opened', 7, repo.first));
    assert.is(answer.status, 202);
    const failed = await waitState('octo/site', 7, 'failed');
    assert.match(failed.reason!, /unknown directive "this"/);
    assert.match(failed.reason!, /zz-mine\.conf/);
    assert.is(readFileSync(mine, 'utf8'), 'this is broken;\n', "the user's file as it was");
    assert.not.ok(existsSync(path.join(nginx.domainDir, 'pr-7.conf')), 'no pr-7.conf left');
    nothingElseWritten(['zz-mine.conf']);
    assert.is((await siteThrough(1)).body, 'v1\n', 'pr-1 still answers');
    assert.is((await siteThrough(7)).status, 404);
  } finally {
    rmSync(mine, { force: true });
  }
});

test('kill -9 of hook-server mid-build: the restarted one builds again, nothing orphaned', async () => {
  const slow = await repo.commit({ 'SLOW.txt': 'yes\n', 'VERSION.txt': 'slow\n' });
  const answer = await deliver(site('opened', 6, slow));
  assert.is(answer.status, 202);
  await waitFor(
    async () =>
      (await recordOf('octo/site', 6))?.state === 'building' && existsSync(path.join(folderOf('octo__site', 6), 'src')),
    {
      intervalMs: 20,
      what: 'pr-6 building in its src folder',
    },
  );
  await server.stop('SIGKILL');
  server = await startServer();
  await waitState('octo/site', 6, 'live', (r) => r.live_sha === slow);
  await waitFor(async () => (await siteThrough(6)).body === 'slow\n', { what: 'pr-6 through nginx' });
  assert.is((await siteThrough(1)).body, 'v1\n', 'pr-1 survived the kill');
  const live = (await records()).filter((r) => r.state === 'live');
  await waitFor(() => hostListsLive(live.length), {
    timeoutMs: 5_000,
    what: `one launchfit host listing the ${live.length} live previews`,
  });
});

test('kill -9 of hook-server between the build and the route: the restarted one routes it, one app runs', async () => {
  // The app takes 3 s to listen: the window after its build, before its route.
  const late = await repo.commit({
    'server.cjs': `setTimeout(() => {\n${SERVER}\n}, 3000);\n`,
    'VERSION.txt': 'late\n',
  });
  assert.is((await deliver(site('opened', 7, late))).status, 202);
  const entry = path.join(data, 'previews', '.launchfit-host', 'roster', 'octo__site.pr-7.json');
  await waitFor(async () => existsSync(entry) && (await recordOf('octo/site', 7))?.state === 'building', {
    intervalMs: 20,
    what: 'pr-7 built and listed with the launchfit host, not yet routed',
  });
  // The app started (it listens 3 s later): the launchfit host holds the port it was given.
  const appOf7 = () =>
    processesOf(folderOf('octo__site', 7)).filter((p) => p.replace(/^\d+ /, '').trim() === 'node server.cjs');
  await waitFor(() => appOf7().length > 0, { intervalMs: 20, what: 'the first app of pr-7 started' });
  assert.not.ok(existsSync(path.join(nginx.domainDir, 'pr-7.conf')), 'no route yet');
  await server.stop('SIGKILL');
  server = await startServer();
  await waitState('octo/site', 7, 'live', (r) => r.live_sha === late);
  // A bound, not a timing: the switch to the rebuilt app (3 s to listen) runs on a busy machine.
  await waitFor(async () => (await siteThrough(7)).body === 'late\n', {
    timeoutMs: 45_000,
    what: 'pr-7 through nginx',
  }).catch(async (error) => {
    const seen = JSON.stringify(await siteThrough(7).catch((e) => String(e)));
    throw new Error(`${error.message}: nginx answers ${seen}; ${JSON.stringify(await recordOf('octo/site', 7))}`, {
      cause: error,
    });
  });
  const apps = appOf7();
  assert.is(apps.length, 1, `one app for pr-7: ${apps.join(' | ')}`);
  const live = (await records()).filter((r) => r.state === 'live');
  await waitFor(() => hostListsLive(live.length), { timeoutMs: 5_000, what: 'the host lists the live previews' });
});

test('max: 2 with 4 pull requests: 2 live, 2 pushed out, their routes gone; a forge answering 500 stops nothing', async () => {
  for (const pr of [11, 12, 13, 14]) {
    const answer = await deliver(event('octo/max', 'opened', pr, repo.first));
    assert.is(answer.status, 202, JSON.stringify(answer.json));
  }
  const settled: View[] = (await waitFor(
    async () => {
      const mine = (await records()).filter((r) => r.repo === 'octo/max');
      const done = mine.length === 4 && mine.every((r) => r.state === 'live' || r.state === 'torn down');
      return done ? mine : undefined;
    },
    { timeoutMs: 45_000, intervalMs: 100, what: 'the 4 previews of octo/max settled' },
  ).catch(async (error) => {
    throw new Error(`${error.message}: ${JSON.stringify(await records())}`, { cause: error });
  })) as View[];
  const live = settled.filter((r) => r.state === 'live');
  const gone = settled.filter((r) => r.state === 'torn down');
  assert.is(live.length, 2, JSON.stringify(settled));
  for (const r of gone) assert.match(r.reason!, /pushed out by max/);
  await new Promise((r) => setTimeout(r, 500)); // nothing flips back afterwards
  const again = (await records()).filter((r) => r.repo === 'octo/max');
  assert.equal(again.map((r) => [r.pr, r.state]).sort(), settled.map((r) => [r.pr, r.state]).sort());
  assert.equal(readdirSync(nginx.pathDir).sort(), live.map((r) => `pr-${r.pr}.conf`).sort());
  for (const r of live) assert.is((await maxThrough(r.pr)).body, 'v1\n', `pr-${r.pr}`);
  for (const r of gone) assert.not.ok(existsSync(folderOf('octo__max', r.pr)), `pr-${r.pr} folder`);
  assert.is((await fetch(`${server.url}/healthz`)).status, 200);
  assert.ok(downForge.seen.length > 0, 'the failing forge was asked');
  nothingElseWritten();
  const allLive = (await records()).filter((r) => r.state === 'live');
  assert.ok(await hostListsLive(allLive.length), 'one launchfit host, listing every live preview and no other');
});

test.run();
