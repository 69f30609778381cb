// `launchfit host`: one real launchfit process running two deploy folders from its roster, each
// app on a port of its own from a real update server; a bad entry and one with nothing to install
// said why; kill -9 of the host leaves the apps serving and the next host adopts them; an entry
// taken off stops its app alone; a second host exits; the last entry gone, the host exits. Node only.
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { restartablePort, runScript, scriptCommand, waitFor } from '../../_helpers/common.ts';
import { appYml, askApp, isRunning, makeWorld, statusOf, type World } from '../../fixtures/launchfit/world.ts';

let w: World;
let hostDir: string;
const ports: Record<string, number> = {};
const children: ChildProcess[] = [];

/** A deploy folder NAME like the world's, with a port of its own. */
async function deployFolder(name: string, server = w.server.url): Promise<string> {
  const dir = path.join(w.base, name);
  mkdirSync(dir);
  ports[name] = await restartablePort();
  cpSync(w.pubAsc, path.join(dir, 'trusted.asc'));
  writeFileSync(
    path.join(dir, 'launchify.yml'),
    `app:\n  env:\n    PORT: ${ports[name]}\nupdates:\n  server: ${server}\n  interval: 3600\n  gpg:\n    keyfile: trusted.asc\n`,
  );
  return dir;
}

const list = (name: string, dir: string) =>
  writeFileSync(
    path.join(hostDir, 'roster', `${name}.json`),
    JSON.stringify({ dir, log: path.join(w.base, `${name}.log`) }),
  );

function startHost(): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const [cmd, ...pre] = scriptCommand('launchfit');
  const child = spawn(cmd, [...pre, 'host', '--dir', hostDir], {
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

/** The pid of the app serving `name`'s folder, from its launchfit's status. */
async function appPid(name: string): Promise<number | undefined> {
  const status = await statusOf(path.join(w.base, name)).catch(() => undefined);
  return status?.app?.pid;
}

test.before(async () => {
  w = await makeWorld();
  await w.publish('1.0', { yml: appYml('  forever: true\n  stable_after: 1\n') });
  hostDir = path.join(w.base, 'host');
  mkdirSync(path.join(hostDir, 'roster'), { recursive: true });
});

test.after(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 500));
  await w.server.close();
});

test('launchfit host without --dir: exit 2, nothing started', async () => {
  const r = await runScript('launchfit', ['host']);
  assert.is(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, /launchfit host needs --dir HOST/);
});

test('two folders run in one host; a bad entry and one with nothing to install say why', async () => {
  const a = await deployFolder('a');
  const b = await deployFolder('b');
  const empty = path.join(w.base, 'nothing-here');
  mkdirSync(empty);
  const c = await deployFolder('c', `${w.server.url}nothing-here/`);
  list('a', a);
  list('b', b);
  list('c', c);
  writeFileSync(path.join(hostDir, 'roster', 'bad.json'), '{"dir": "relative"');
  const host = startHost();
  await waitFor(async () => (await askApp(ports.a)) === '1.0' && (await askApp(ports.b)) === '1.0', {
    timeoutMs: 60_000,
    what: `a and b serving 1.0; host said:\n${host.output()}`,
  });
  await waitFor(() => existsSync(path.join(hostDir, 'ended', 'c')), { what: 'c ended' });
  const ended = JSON.parse(readFileSync(path.join(hostDir, 'ended', 'c'), 'utf8'));
  assert.is(ended.removed, false);
  assert.match(ended.reason, /VERSION|404|nothing was installed/, ended.reason);
  assert.match(host.output(), /roster entry "bad.json" is not used: not JSON/);
  assert.match(readFileSync(path.join(w.base, 'a.log'), 'utf8'), /app started/);
  const again = await runScript('launchfit', ['host', '--dir', hostDir]);
  assert.is(again.exitCode, 0, again.stderr);
  assert.match(again.stderr, /another launchfit host runs for this folder/);
});

test('kill -9 of the host: the apps serve on, and the next host adopts them', async () => {
  const before = [await appPid('a'), await appPid('b')];
  assert.ok(before.every(Boolean), JSON.stringify(before));
  const pid = JSON.parse(readFileSync(path.join(hostDir, 'host.pid'), 'utf8')).pid;
  process.kill(pid, 'SIGKILL');
  await waitFor(() => !isRunning(pid), { what: 'the host gone' });
  assert.is(await askApp(ports.a), '1.0', 'a serves without its launchfit');
  const host = startHost();
  await waitFor(async () => (await appPid('a')) && (await appPid('b')), {
    timeoutMs: 30_000,
    what: `both launchers back; host said:\n${host.output()}`,
  });
  assert.equal([await appPid('a'), await appPid('b')], before, 'the same apps, adopted');
});

test('an entry taken off stops its app alone; the last one gone, the host exits', async () => {
  const [appA, appB] = [(await appPid('a'))!, (await appPid('b'))!];
  rmSync(path.join(hostDir, 'roster', 'a.json'));
  await waitFor(() => existsSync(path.join(hostDir, 'ended', 'a')), { what: 'a ended' });
  assert.equal(JSON.parse(readFileSync(path.join(hostDir, 'ended', 'a'), 'utf8')).removed, true);
  await waitFor(() => !isRunning(appA), { what: "a's app ended" });
  assert.ok(isRunning(appB), "b's app runs on");
  assert.is(await askApp(ports.b), '1.0');
  const hostPid = JSON.parse(readFileSync(path.join(hostDir, 'host.pid'), 'utf8')).pid;
  for (const name of ['b', 'c', 'bad']) rmSync(path.join(hostDir, 'roster', `${name}.json`));
  await waitFor(() => !isRunning(hostPid), { timeoutMs: 20_000, what: 'the host exited' });
  assert.not.ok(isRunning(appB), "b's app ended with it");
  assert.not.ok(existsSync(path.join(hostDir, 'host.pid')));
});

test.run();
