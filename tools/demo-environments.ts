// npm run demo -- --environments: staging → approval → production (docs/environments.md) in a temp
// folder, on loopback. A release key (`release keys init`), an approver's key, shipkit.yml with both
// environments; 1.0.0 published to staging, a promote refused until `approve`, then the same bytes
// in production, `release history`, and launchfit serving it from production over HTTP. Each
// command runs as the other demos run shipkit's scripts and is printed with what it answered.
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as openpgp from 'openpgp';
import { askApp, killProcessesOf, startLaunchfit, type Launchfit } from '../test/fixtures/launchfit/world.ts';
import { startUpdateServer, type UpdateServer } from '../test/fixtures/launchfit/update-server.ts';
import { describeProcesses, killProcessesUsing } from '../test/fixtures/processes.ts';
import { restartablePort, ROOT, runScript, scriptCommand, waitFor } from '../test/_helpers/common.ts';

const say = (line: string) => console.log(line);
const APP = 'demo-app';
const VERSION = '1.0.0';
const TARBALL = `${APP}-gnu-linux-${VERSION}.tar.gz`;
/** A dated deny window that is over: production checks it, and it lets the promote through. */
const PAST_FREEZE = '2024-12-24 00:00 - 2024-12-27 00:00';

const SERVER_JS = `// The demo's app: answers its version on $PORT (127.0.0.1).
const http = require('node:http');
const server = http.createServer((req, res) => res.end('${APP} ${VERSION}, pid ' + process.pid + '\\n'));
server.listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
`;

interface World {
  base: string;
  /** The children's environment: ledger state (XDG_CONFIG_HOME) in the demo's folder, logs as JSON. */
  env: Record<string, string>;
  updates?: UpdateServer;
  lf?: Launchfit;
  stopping?: Promise<void>;
}

/**
 * What a command answered: its stdout, and the warnings and errors of its log (children log JSON
 * lines here, so the info lines, which repeat the answer with its fields, can be left out).
 */
function answerOf(stdout: string, stderr: string): string[] {
  const logged = stderr.split('\n').flatMap((line) => {
    if (!line.trim()) return [];
    try {
      const { level, msg } = JSON.parse(line) as { level?: string; msg?: string };
      return level === 'info' || level === 'debug' ? [] : [`${level}: ${msg}`];
    } catch {
      return [line];
    }
  });
  return [...stdout.trimEnd().split('\n').filter(Boolean), ...logged];
}

/** Runs `shipkit ARGS` in the demo's folder, printed as typed, with its exit code, time and answer. */
async function shipkit(world: World, args: string[], expected = 0): Promise<string> {
  const shown = args.map((a) => (/^[\w./:@=-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
  say(`$ shipkit ${shown}`);
  const t0 = Date.now();
  const r = await runScript('shipkit', args, { cwd: world.base, env: world.env, timeoutMs: 120_000 });
  const refused = r.exitCode === 2 ? ' (refused)' : '';
  say(`  → exit ${r.exitCode}${refused} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const answer = answerOf(r.stdout, r.stderr);
  for (const line of answer) say(`    ${line}`);
  if (r.exitCode !== expected)
    throw new Error(`shipkit ${args.slice(0, 2).join(' ')} exited ${r.exitCode}, not ${expected}`);
  return answer.join('\n');
}

/** Alice's key, made in-process: her secret key to sign with, her public key in approvers/. */
async function makeApprover(base: string): Promise<void> {
  const { privateKey, publicKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'ed25519Legacy',
    userIDs: [{ name: 'Alice', email: 'alice@example.com' }],
    format: 'armored',
  });
  writeFileSync(path.join(base, 'approver.asc'), privateKey, { mode: 0o600 });
  mkdirSync(path.join(base, 'approvers'));
  writeFileSync(path.join(base, 'approvers', 'alice.asc'), publicKey);
}

function writeConfig(base: string): void {
  const lines = [
    `data: ${path.join(base, 'data')}`,
    'apps:',
    `  ${APP}:`,
    `    key: file:${path.join(base, 'release-key', 'signing.asc')}`,
    '    environments:',
    '      staging:',
    `        to: ${path.join(base, 'staging')}`,
    '        branches: [main]',
    '      production:',
    `        to: ${path.join(base, 'production')}`,
    `        approvals: { required: 1, from: [${path.join(base, 'approvers', 'alice.asc')}] }`,
    `        windows: [{ deny: "${PAST_FREEZE}", tz: UTC }]`,
    '',
  ];
  writeFileSync(path.join(base, 'shipkit.yml'), lines.join('\n'));
  say('  shipkit.yml:');
  for (const line of lines.slice(0, -1)) say(`    ${line}`);
}

function writeApp(base: string): void {
  const dir = path.join(base, 'app');
  mkdirSync(dir);
  writeFileSync(path.join(dir, 'server.js'), SERVER_JS);
  writeFileSync(path.join(dir, 'launchify.yml'), 'app:\n  exec: node server.js\n  healthy_after: 1\n');
}

/** Keys, config and app; the release key's primary fingerprint (what hosts pin). */
async function setUp(world: World): Promise<string> {
  say('\n1. a release key, an approver and shipkit.yml');
  const made = await shipkit(world, [
    'release',
    'keys',
    'init',
    '--out',
    'release-key',
    '--uid',
    'Demo <demo@example.com>',
  ]);
  const primary = /^primary ([0-9A-Fa-f]{40,64})\b/m.exec(made)?.[1];
  if (!primary) throw new Error('release keys init printed no primary fingerprint');
  await makeApprover(world.base);
  say("  approver.asc: Alice's secret key (made with openpgp), approvers/alice.asc her public key");
  writeConfig(world.base);
  writeApp(world.base);
  return primary;
}

const sha256Of = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
const promote = ['release', 'promote', APP, VERSION, '--from', 'staging', '--to', 'production'];

/** Publish to staging, promote (refused), approve, promote; both tarballs' sha256 and the history. */
async function stagingToProduction(world: World): Promise<void> {
  const key = ['--key', 'release-key/signing.asc'];
  say(`\n2. publish ${APP} ${VERSION} (the folder app/, a server.js) to staging`);
  const release = ['--name', APP, '--platform', 'gnu-linux', '--version', VERSION];
  await shipkit(world, ['release', 'publish', 'app', ...release, ...key, '--to', 'staging']);
  say('\n3. promote it to production before anyone approved');
  await shipkit(world, [...promote, '--config', 'shipkit.yml'], 2);
  say('\n4. the approvals production waits for; Alice approves');
  await shipkit(world, ['approvals', '--config', 'shipkit.yml']);
  await shipkit(world, [
    'approve',
    APP,
    VERSION,
    '--env',
    'production',
    '--key',
    'approver.asc',
    '--config',
    'shipkit.yml',
  ]);
  say('\n5. promote again (the deny window is over)');
  await shipkit(world, [...promote, '--config', 'shipkit.yml']);
  const sums = ['staging', 'production'].map((env) => sha256Of(path.join(world.base, env, TARBALL)));
  say(`  staging/${TARBALL}     sha256 ${sums[0]}`);
  say(`  production/${TARBALL}  sha256 ${sums[1]}`);
  if (sums[0] !== sums[1]) throw new Error('the tarball in production is not the one in staging');
  say('  the same bytes in both');
  await shipkit(world, ['release', 'history', APP, '--config', 'shipkit.yml']);
}

/** launchfit on a host pinned to the release key, updating from production served over loopback HTTP. */
async function serveFromProduction(world: World, primary: string): Promise<void> {
  world.updates = await startUpdateServer(path.join(world.base, 'production'));
  say(`\n6. launchfit runs the app from production (${world.updates.url}, a folder over HTTP)`);
  const host = path.join(world.base, 'host');
  mkdirSync(host);
  const port = await restartablePort();
  const updates = `updates:\n  server: ${world.updates.url}\n  interval: 3600\n  gpg:\n    key: "${primary}"\n`;
  writeFileSync(path.join(host, 'launchify.yml'), `app:\n  env:\n    PORT: ${port}\n${updates}`);
  say(`  host/launchify.yml pins the release key's primary; the app listens on 127.0.0.1:${port}`);
  await shipkit(world, ['launchfit', 'deploy', '--dir', 'host']);
  say('$ shipkit launchfit run --dir host');
  world.lf = await startLaunchfit(host, world.env);
  say(`  → running (pid ${world.lf.child.pid}): launchfit ready, it starts the app`);
  let answer: string | undefined;
  await waitFor(async () => (answer = await askApp(port, 1000))?.startsWith(`${APP} ${VERSION}`) ?? false, {
    timeoutMs: 30_000,
    what: `the app on port ${port}`,
  });
  say(`  GET http://127.0.0.1:${port}/ → ${answer}`);
}

/** launchfit (it stops its app) and the update server; then whatever still runs in the folder, and the folder. */
function stopWorld(world: World): Promise<void> {
  world.stopping ??= (async () => {
    await world.lf?.stop('SIGTERM');
    await world.updates?.close();
    killProcessesOf(path.join(world.base, 'host'));
    const survivors = await killProcessesUsing(world.base);
    if (survivors.length) console.error(`could not stop these processes of the demo:\n${describeProcesses(survivors)}`);
    rmSync(world.base, { recursive: true, force: true });
  })();
  return world.stopping;
}

export async function runEnvironmentsDemo(): Promise<void> {
  const started = Date.now();
  const base = mkdtempSync(path.join(os.tmpdir(), 'shipkit-demo-env-'));
  const world: World = { base, env: { XDG_CONFIG_HOME: path.join(base, 'config'), LOG_FORMAT: 'json' } };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      console.log(`\n${signal}: stopping everything the demo started`);
      void stopWorld(world).finally(() => process.exit(130));
    });
  }
  say(`shipkit demo: staging → approval → production, everything in ${base}`);
  say(
    `  shipkit is: ${scriptCommand('shipkit')
      .map((a) => (a.startsWith(ROOT) ? path.relative(ROOT, a) : path.basename(a)))
      .join(' ')}`,
  );
  try {
    const primary = await setUp(world);
    await stagingToProduction(world);
    await serveFromProduction(world, primary);
  } finally {
    await stopWorld(world);
  }
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  say(`\n${APP} ${VERSION}: published to staging, refused in production until Alice approved, then promoted`);
  say('byte for byte and served by launchfit from production.');
  say(`demo done in ${seconds} s; everything it started is stopped`);
}
