// npm run demo -- --previews: a preview per pull request (docs/previews.md) on loopback, in a short
// temp folder of /tmp (launchfit's control socket path has 107 bytes at most). Debian's nginx with
// its own prefix and conf on a free 127.0.0.1 port, started as the user running the demo (under
// root its worker runs as nobody); a bare git repo with a tiny app that answers its version on fd 3
// or $PORT; hook-server whose repo has `previews:` for preview.localhost. It delivers signed GitHub
// pull_request events (opened; synchronize after a push; closed) and prints when the preview answers
// through nginx with each version, then 404; then stops everything. tools/demo.ts hands
// `--previews` here. SHIPKIT_DEMO_NGINX names another nginx binary (default /usr/sbin/nginx).
import { spawn } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { previewUserEnv } from '../test/fixtures/previews/as-user.ts';
import { randomUUID } from 'node:crypto';
import { stopPreview } from '../lib/previews/launch.ts';
import { deliverGithub } from '../test/fixtures/hooks/deliveries.ts';
import { githubPullRequest } from '../test/fixtures/hooks/pull-requests.ts';
import { nginxConf } from '../test/fixtures/nginx.ts';
import { getThrough, type Answer } from '../test/fixtures/previews/nginx.ts';
import { describeProcesses, killProcessesUsing } from '../test/fixtures/processes.ts';
import { accepting, freePort, makeBareRepo, startScript, waitFor, type Server } from '../test/_helpers/common.ts';

/** The nginx binary the demo starts: Debian's, unless SHIPKIT_DEMO_NGINX names another. */
export const DEMO_NGINX = process.env.SHIPKIT_DEMO_NGINX || '/usr/sbin/nginx';
export const nginxInstalled = () => existsSync(DEMO_NGINX);

const say = (line: string) => console.log(line);
const ms = (t: number, t0: number) => `+${String(t - t0).padStart(6)} ms`;
const REPO = 'demo/site';
const DOMAIN = 'preview.localhost';
const PR = 1;
const HOST = `pr-${PR}.${DOMAIN}`;
const SECRET = `secret-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
/** How long each step may take: a first build starts launchfit and the app under tsx. */
const STEP_MS = 90_000;

const APP = `// The demo's preview app: answers its version on every socket launchfit hands it (fds 3…,
// LISTEN_FDS: the port, and the private one its health checks come on), or on $PORT.
const fs = require('node:fs');
const http = require('node:http');
const version = fs.readFileSync(__dirname + '/VERSION.txt', 'utf8').trim();
const answer = (req, res) =>
  res.end('demo/site version ' + version + ', pull request #' + process.env.SHIPKIT_PR + '\\n');
const fds = Array.from({ length: Number(process.env.LISTEN_FDS) || 0 }, (_, i) => 3 + i);
const servers = fds.length
  ? fds.map((fd) => http.createServer(answer).listen({ fd }))
  : [http.createServer(answer).listen(Number(process.env.PORT), '127.0.0.1')];
process.on('SIGTERM', () => {
  for (const server of servers) server.close();
  setTimeout(() => process.exit(0), 200).unref();
});
`;

interface DemoNginx {
  port: number;
  /** The folder hook-server writes pr-N.conf into; nginx.conf includes it in http {}. */
  routes: string;
  test: string;
  reload: string;
  stop(): Promise<void>;
}

interface World {
  base: string;
  data: string;
  nginx?: DemoNginx;
  server?: Server;
  repo?: Awaited<ReturnType<typeof makeBareRepo>>;
  stopping?: Promise<void>;
}

/**
 * nginx with its prefix in BASE/nginx on a free loopback port: a master and one worker (so that
 * `nginx -s reload` has someone to tell), a default server answering 404, and the routes folder
 * included in http {}. Under root the master stays root and its worker runs as nobody.
 */
async function startDemoNginx(base: string): Promise<DemoNginx> {
  const prefix = path.join(base, 'nginx');
  const routes = path.join(prefix, 'previews');
  mkdirSync(routes, { recursive: true });
  const port = await freePort();
  const conf = path.join(prefix, 'nginx.conf');
  const errorLog = path.join(prefix, 'error.log');
  const site = [
    '  access_log off;',
    '  server {',
    `    listen 127.0.0.1:${port} default_server;`,
    '    return 404 "no preview of that name\\n";',
    '  }',
    `  include ${routes}/*.conf;`,
  ];
  const main = process.getuid?.() === 0 ? ['user nobody nogroup;'] : [];
  writeFileSync(conf, nginxConf(prefix, site, { main }).replace('master_process off;\n', ''));
  const args = ['-p', prefix, '-c', conf, '-e', errorLog];
  const fd = openSync(path.join(prefix, 'output.log'), 'a');
  const child = spawn(DEMO_NGINX, args, { cwd: prefix, stdio: ['ignore', fd, fd], detached: true });
  closeSync(fd);
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, name);
    } catch {
      // gone already
    }
  };
  const log = () => (existsSync(errorLog) ? readFileSync(errorLog, 'utf8') : '');
  const up = await waitFor(async () => child.exitCode !== null || (await accepting(port)), {
    timeoutMs: 10_000,
    what: 'nginx to listen',
  }).catch(() => false);
  if (!up || child.exitCode !== null) {
    signal('SIGKILL');
    throw new Error(`nginx did not start: ${log() || readFileSync(path.join(prefix, 'output.log'), 'utf8')}`);
  }
  const stop = async () => {
    signal('SIGQUIT'); // graceful: the worker ends its requests, then the master exits
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
    signal('SIGKILL');
  };
  const command = (...verb: string[]) => [DEMO_NGINX, ...verb, ...args].join(' ');
  return { port, routes, test: command('-t', '-q'), reload: command('-s', 'reload'), stop };
}

function writeConfig(world: World): string {
  const { nginx, repo } = world;
  const file = path.join(world.base, 'shipkit.yml');
  const lines = [
    'listen: 127.0.0.1:0',
    `data: ${world.data}`,
    'secret: env:HOOK_SECRET',
    'token: env:HOOK_TOKEN',
    'repos:',
    `  ${REPO}:`,
    `    url: file://${repo!.bare}`,
    '    steps: [pull]',
    '    previews:',
    `      domain: ${DOMAIN}`,
    '      nginx:',
    `        dir: ${nginx!.routes}`,
    `        listen: 127.0.0.1:${nginx!.port}`,
    `        test: ${nginx!.test}`,
    `        reload: ${nginx!.reload}`,
    '      start: node server.js',
    '      health: /',
    '',
  ];
  writeFileSync(file, lines.join('\n'));
  return file;
}

async function startWorld(world: World): Promise<void> {
  world.nginx = await startDemoNginx(world.base);
  say(`  nginx: http://127.0.0.1:${world.nginx.port}/ (prefix ${path.join(world.base, 'nginx')})`);
  world.repo = await makeBareRepo(path.join(world.base, 'git'), 'site', {
    'server.js': APP,
    'VERSION.txt': '1\n',
  });
  say(`  git repo: ${world.repo.bare} (app version 1)`);
  const config = writeConfig(world);
  world.server = await startScript('hook-server', ['--config', config], {
    env: { ...(await previewUserEnv([world.base])), HOOK_SECRET: SECRET, HOOK_TOKEN: TOKEN },
  });
  say(`  hook-server: ${world.server.url} (previews of ${REPO} at pr-N.${DOMAIN}, routes in ${world.nginx.routes})`);
}

/** GitHub's pull_request example for `action`, for pull request #1 of demo/site at `sha`, by its owner. */
function pullRequest(world: World, action: string, sha: string): Record<string, any> {
  const payload = githubPullRequest(action, { repo: REPO });
  payload.number = PR;
  payload.pull_request.number = PR;
  payload.pull_request.head.sha = sha;
  payload.pull_request.head.repo.clone_url = `file://${world.repo!.bare}`;
  payload.pull_request.author_association = 'OWNER';
  return payload;
}

interface PreviewRecord {
  pr: number;
  state: string;
  since: string;
  reason?: string;
}

/** The preview's record as hook-server's GET /previews lists it. */
async function recordOf(world: World): Promise<PreviewRecord | undefined> {
  const headers = { Authorization: `Bearer ${TOKEN}` };
  const res = await fetch(`${world.server!.url}/previews`, { headers }).catch(() => undefined);
  const listed = res?.ok ? await res.json() : undefined;
  return listed?.previews?.find((p: PreviewRecord) => p.pr === PR);
}

/**
 * Delivers one pull_request event and waits until pr-1 answers `status` (with `body`) through
 * nginx, or its build fails; when it was delivered.
 */
async function deliverAndWait(world: World, action: string, sha: string, status: number, body?: RegExp) {
  const t0 = Date.now();
  const answer = await deliverGithub(world.server!.url, 'pull_request', pullRequest(world, action, sha), SECRET);
  say(`  ${ms(Date.now(), t0)}  delivered pull_request ${action}: ${answer.status} ${JSON.stringify(answer.json)}`);
  if (answer.status !== 202)
    throw new Error(`hook-server answered the ${action} delivery ${answer.status}: ${JSON.stringify(answer.json)}`);
  let last: Answer | undefined;
  let asked = 0;
  const wanted = async () => {
    last = await getThrough(world.nginx!.port, '/', HOST).catch((error) => ({ status: 0, body: String(error) }));
    if (last.status === status && (!body || body.test(last.body))) return true;
    const record = ++asked % 20 === 0 ? await recordOf(world) : undefined; // about once a second
    if (record?.state === 'failed' && Date.parse(record.since) >= t0)
      throw new Error(`the preview failed after pull_request ${action}: ${record.reason}`);
    return false;
  };
  await waitFor(wanted, { timeoutMs: STEP_MS, intervalMs: 50, what: HOST }).catch(async (error) => {
    if (!/^timed out/.test(error.message)) throw error;
    const got = `${last?.status} ${JSON.stringify(last?.body.slice(0, 200))}`;
    const record = JSON.stringify((await recordOf(world)) ?? 'none');
    throw new Error(
      `${HOST} did not answer ${status} within ${STEP_MS / 1000} s (last: ${got}); the preview: ${record}`,
    );
  });
  const url = `http://${HOST}:${world.nginx!.port}/`;
  say(`  ${ms(Date.now(), t0)}  ${url} answers ${last!.status}: ${last!.body.trim()}`);
  return t0;
}

async function showPreviews(world: World): Promise<void> {
  const { port } = world.nginx!;
  say(`\n1. pull request #${PR} opened (GitHub's pull_request event, signed with X-Hub-Signature-256)`);
  await deliverAndWait(world, 'opened', world.repo!.first, 200, /version 1,/);
  say(`  the same by hand: curl -H 'Host: ${HOST}' http://127.0.0.1:${port}/`);
  say(`\n2. git push: app version 2, then pull request #${PR} synchronize`);
  const second = await world.repo!.commit({ 'VERSION.txt': '2\n' }, 'version 2');
  await deliverAndWait(world, 'synchronize', second, 200, /version 2,/);
  say(`\n3. pull request #${PR} closed`);
  const t0 = await deliverAndWait(world, 'closed', second, 404);
  const folder = path.join(world.data, 'previews');
  const gone = () => !readdirSync(folder).some((d) => existsSync(path.join(folder, d, `pr-${PR}`)));
  await waitFor(gone, { timeoutMs: 30_000, what: "the preview's folder removed" });
  const left = readdirSync(world.nginx!.routes).filter((f) => f.endsWith('.conf'));
  if (left.length) throw new Error(`routes left in ${world.nginx!.routes}: ${left.join(' ')}`);
  say(`  ${ms(Date.now(), t0)}  torn down: launchfit and the app stopped, pr-${PR}.conf and the folder removed`);
}

/** Every preview folder in DATA/previews/REPO/pr-N, for a demo that failed half-way. */
function previewFolders(data: string): string[] {
  const root = path.join(data, 'previews');
  if (!existsSync(root)) return [];
  return readdirSync(root, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .flatMap((e) =>
      readdirSync(path.join(root, e.name))
        .filter((n) => /^pr-\d+$/.test(n))
        .map((n) => path.join(root, e.name, n)),
    );
}

/**
 * hook-server, then any preview still open (previews outlive hook-server by design), then nginx;
 * whatever still runs in the demo's folder is killed, and the folder removed. Once only.
 */
function stopWorld(world: World): Promise<void> {
  world.stopping ??= (async () => {
    await world.server?.stop('SIGTERM');
    for (const folder of previewFolders(world.data)) await stopPreview(folder, { graceMs: 3_000 }).catch(() => {});
    await world.nginx?.stop();
    const survivors = await killProcessesUsing(world.base);
    if (survivors.length) console.error(`could not stop these processes of the demo:\n${describeProcesses(survivors)}`);
    rmSync(world.base, { recursive: true, force: true });
  })();
  return world.stopping;
}

export async function runPreviewsDemo(): Promise<void> {
  const started = Date.now();
  // Short and right under /tmp: DATA/previews/REPO/pr-N/host/.launchfit/control.sock fits 107 bytes.
  const base = mkdtempSync('/tmp/skd-');
  // Searchable by others (not listable), so a preview's own user (hook-server's, or under root
  // a uid of its own) reaches its folder and the git repo.
  chmodSync(base, 0o711);
  const world: World = { base, data: path.join(base, 'data') };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      console.log(`\n${signal}: stopping everything the demo started`);
      void stopWorld(world).finally(() => process.exit(130));
    });
  }
  say(`shipkit demo: a preview per pull request through nginx, everything in ${base}`);
  try {
    await startWorld(world);
    say(`ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    await showPreviews(world);
  } catch (error) {
    if (world.server) console.error(`hook-server output:\n${world.server.output().slice(-3000)}`);
    throw error;
  } finally {
    await stopWorld(world);
    say(`demo done in ${((Date.now() - started) / 1000).toFixed(1)} s; everything it started is stopped`);
  }
}
