// Previews built on workers (docs/previews.md, "Builds on workers"), with a real PostgreSQL, a
// hook-server that builds nothing itself (concurrency: 0, previews.build_on: workers) and its real
// nginx, and a `shipkit worker` with a DATA of its own, as on two machines: the build waits for a
// worker, runs there, and its tree (no .git) and log come back through the database; the preview
// machine runs it. A push is built there again; a build that fails on the worker fails the preview
// with the worker's words, and the worker keeps nothing.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { stopPreview } from '../../../lib/previews/launch.ts';
import { deliverGithub } from '../../fixtures/hooks/deliveries.ts';
import { ownerPullRequest } from '../../fixtures/hooks/pull-requests.ts';
import { previewUserEnv } from '../../fixtures/previews/as-user.ts';
import { getThrough, nginxBlock, startPreviewNginx, type PreviewNginx } from '../../fixtures/previews/nginx.ts';
import { startPostgres, type Postgres } from '../../fixtures/postgres.ts';
import { startWorker, type Worker } from '../../fixtures/workers.ts';
import { makeBareRepo, startScript, tmpDir, waitFor, type Server } from '../../_helpers/common.ts';

const SECRET = `secret-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const SERVER = readFileSync(path.join(import.meta.dirname, '../../fixtures/previews/site/server.cjs'), 'utf8');
const dir = tmpDir('shipkit-previews-workers-');
// Short folders of /tmp: launchfit's control socket path has 107 bytes at most.
const data = mkdtempSync('/tmp/skp-');
const workerData = mkdtempSync('/tmp/skw-');
let pg: Postgres | undefined;
let nginx: PreviewNginx;
let server: Server;
let worker: Worker | undefined;
let repo: Awaited<ReturnType<typeof makeBareRepo>>;

const through = (pr: number, urlPath = '/') =>
  getThrough(nginx.port, urlPath, `pr-${pr}.preview.test`).catch(() => ({ status: 0, body: '' }));
const folder = (root: string, pr: number) => path.join(root, 'previews', 'octo__site', `pr-${pr}`);
const authed = { headers: { Authorization: `Bearer ${TOKEN}` } };

function writeConfig(file: string, folderOfData: string, extra: string[]): string {
  writeFileSync(
    file,
    [
      'listen: 127.0.0.1:0',
      `data: ${folderOfData}`,
      'secret: env:HOOK_SECRET',
      'token: env:HOOK_TOKEN',
      'queue: env:SHIPKIT_QUEUE_URL',
      ...extra,
      'repos:',
      '  octo/site:',
      `    url: file://${repo.bare}`,
      '    steps: [pull, compile]',
      // A commit holding FAIL fails its build.
      '    compile: test ! -e FAIL',
      '    previews:',
      '      domain: preview.test',
      ...nginxBlock(nginx),
      '      start: node server.cjs',
      '      build_on: workers',
      '',
    ].join('\n'),
  );
  return file;
}

function event(action: string, pr: number, sha: string) {
  return ownerPullRequest(action, { pr, sha, cloneUrl: `file://${repo.bare}` });
}
const deliver = (payload: unknown) => deliverGithub(server.url, 'pull_request', payload, SECRET);

async function recordOf(pr: number): Promise<{ state: string; reason?: string } | undefined> {
  const res = await fetch(`${server.url}/previews`, authed);
  return (await res.json()).previews.find((p: { pr: number }) => p.pr === pr);
}

let env: Record<string, string>;

test.before(async () => {
  pg = await startPostgres();
  if (!pg) return;
  nginx = await startPreviewNginx();
  repo = await makeBareRepo(dir, 'site', { 'server.cjs': SERVER, 'VERSION.txt': 'v1\n' });
  env = {
    ...(await previewUserEnv([dir, data, workerData])),
    HOOK_SECRET: SECRET,
    HOOK_TOKEN: TOKEN,
    SHIPKIT_QUEUE_URL: pg.url,
    SHIPKIT_PREVIEWS_SWEEP_MS: '1000',
  };
  // concurrency: 0 — hook-server builds nothing itself: every build is a worker's.
  const config = writeConfig(path.join(dir, 'hook.yml'), data, ['concurrency: 0']);
  server = await startScript('hook-server', ['--config', config, '--name', 'preview-machine'], { env });
});

test.after(async () => {
  await worker?.stop();
  await server?.stop('SIGTERM');
  const root = path.join(data, 'previews', 'octo__site');
  for (const name of existsSync(root) ? readdirSync(root) : []) await stopPreview(path.join(root, name));
  for (const d of [data, workerData]) rmSync(d, { recursive: true, force: true });
  await nginx?.stop();
  await pg?.stop();
});

test('built on a worker, run on the preview machine: the tree and the log come back, the worker keeps nothing', async () => {
  if (!pg) return console.log('  skipped: no PostgreSQL (the postgresql package)');
  const answer = await deliver(event('opened', 2, repo.first));
  assert.is(answer.status, 202, JSON.stringify(answer.json));
  // No worker yet: nothing is built here (the leading node took the event, and waits for a worker).
  await waitFor(async () => (await recordOf(2))?.state === 'building', { what: 'pr-2 building' });
  await new Promise((resolve) => setTimeout(resolve, 1500));
  assert.not.ok(existsSync(path.join(folder(data, 2), 'src')), 'hook-server built nothing itself');

  const workerConfig = writeConfig(path.join(dir, 'worker.yml'), workerData, []);
  worker = await startWorker(workerConfig, 'w1', env);
  await waitFor(async () => (await through(2)).body === 'v1\n', {
    timeoutMs: 60_000,
    what: 'pr-2 through nginx',
  }).catch(async (error) => {
    throw new Error(`${error.message}: ${JSON.stringify(await recordOf(2))}\n${worker!.output()}`, { cause: error });
  });
  const src = path.join(folder(data, 2), 'src');
  assert.ok(existsSync(path.join(src, 'server.cjs')), 'the built tree is on the preview machine');
  assert.not.ok(existsSync(path.join(src, '.git')), 'without .git');
  if (process.getuid?.() === 0) {
    const owner = statSync(path.join(src, 'server.cjs')).uid;
    assert.is(statSync(folder(data, 2)).gid, owner, "the tree is the preview's own uid's");
  }
  const log = await (await fetch(`${server.url}/previews/log?repo=octo/site&pr=2`, authed)).text();
  assert.match(log, /=== built on worker w1/);
  assert.match(log, /step compile/);
  assert.not.ok(existsSync(folder(workerData, 2)), 'the worker removed its copy');
  assert.match(worker.output(), /preview build taken/);
});

test('a push is built on the worker again; a build that fails there fails the preview, saying so', async () => {
  if (!pg) return;
  const second = await repo.commit({ 'VERSION.txt': 'v2\n' });
  assert.is((await deliver(event('synchronize', 2, second))).status, 202);
  await waitFor(async () => (await through(2)).body === 'v2\n', { timeoutMs: 60_000, what: 'v2 through nginx' }).catch(
    async (error) => {
      throw new Error(
        `${error.message}: ${JSON.stringify(await recordOf(2))} through=${JSON.stringify(await through(2))}\n${worker!.output()}`,
        { cause: error },
      );
    },
  );

  const broken = await repo.commit({ FAIL: 'yes\n' });
  assert.is((await deliver(event('opened', 3, broken))).status, 202);
  const failed = await waitFor(
    async () => {
      const r = await recordOf(3);
      return r?.state === 'failed' ? r : undefined;
    },
    { timeoutMs: 60_000, what: 'pr-3 failed' },
  );
  assert.match(failed!.reason ?? '', /the build of [0-9a-f]{7} failed: on worker w1: .*test ! -e FAIL/);
  assert.is((await through(3)).status, 404);
  // The other keeps serving (its old build may answer until launchfit's switch has drained it).
  await waitFor(async () => (await through(2)).body === 'v2\n', { what: 'pr-2 still serving v2' });
  assert.not.ok(existsSync(folder(workerData, 3)), 'the worker keeps nothing of a failed build either');
});

test.run();
