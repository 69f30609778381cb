// docs/launchfit.md "An update server that answers Range" held against real servers: the page's
// nginx snippet, run as written on the update folder, answers Range with 206 and a real host
// takes the files way through it; Python's http.server, which the walk on that page uses, answers
// 200 to a Range, and a host behind it downloads the whole tarball, as the page says.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { freePort, ROOT, runScript, waitFor } from '../../_helpers/common.ts';
import { fencedBlocks } from '../../_helpers/markdown.ts';
import { NGINX, startNginx } from '../../fixtures/nginx.ts';
import { makeWorld, statusOf, type World } from '../../fixtures/launchfit/world.ts';

const PAGE = readFileSync(path.join(ROOT, 'docs', 'launchfit.md'), 'utf8');
const SECTION = '### An update server that answers Range';

/** The ```nginx block of the page's section on update servers. */
function docsSnippet(): string {
  const from = PAGE.indexOf(SECTION);
  assert.ok(from >= 0, `docs/launchfit.md has "${SECTION}"`);
  const section = PAGE.slice(from, PAGE.indexOf('\n## ', from));
  const block = fencedBlocks(section).blocks.find((b) => b.info === 'nginx');
  assert.ok(block, 'the section shows an nginx config');
  return block.code;
}

/** 130 KB that gzip cannot shrink much: a file with a gzip member of its own, the same in every version. */
const bigText = (tag: string) =>
  Array.from({ length: 4096 }, (_, k) => `${tag}${k}:${Math.sin(k * 7919 + tag.charCodeAt(0)).toString(36)}\n`).join(
    '',
  );
const FILES = Object.fromEntries(['a', 'b', 'c', 'd'].map((t) => [`${t}.bin`, bigText(t)]));

/** The host's launchify.yml pointed at `url` instead of the world's own server. */
function pointHostAt(w: World, url: string): void {
  const file = path.join(w.deploy, 'launchify.yml');
  writeFileSync(
    file,
    readFileSync(file, 'utf8').replace(/server: \S+/, `server: ${url.endsWith('/') ? url : `${url}/`}`),
  );
}

async function update(w: World): Promise<string> {
  const r = await runScript('launchfit', ['update', '--dir', w.deploy]);
  assert.is(r.exitCode, 0, r.stdout + r.stderr);
  return r.stdout + r.stderr;
}

const rangeStatus = async (url: string) => {
  const res = await fetch(url, { headers: { Range: 'bytes=0-9' } });
  await res.arrayBuffer();
  return res.status;
};

test('the page no longer says that any server answers Range, and names Python as one that does not', () => {
  assert.not.match(PAGE, /Any HTTP server that serves files answers Range/);
  assert.match(PAGE, /Python's `http.server` \(the walk\s+above\) does not/);
});

test("Python's http.server: 200 to a Range, so the host downloads the tarball; the docs' nginx: 206, the files way", async () => {
  const w = await makeWorld();
  // The world's own update server is not the one the host is pointed at, but it listens until closed.
  try {
    await viaPythonThenNginx(w);
  } finally {
    await w.server.close();
  }
});

async function viaPythonThenNginx(w: World): Promise<void> {
  await w.publish('1.0', { files: FILES });
  w.writeConfig();
  const deployed = await runScript('launchfit', ['deploy', '--dir', w.deploy]);
  assert.is(deployed.exitCode, 0, deployed.stderr);

  // Python, as the walk at the top of docs/launchfit.md starts it.
  await w.publish('1.1', { files: FILES, patches: 0 });
  const pyPort = await freePort();
  const python = spawn(
    'python3',
    ['-m', 'http.server', '--bind', '127.0.0.1', '--directory', w.updates, String(pyPort)],
    {
      stdio: 'ignore',
    },
  );
  try {
    const py = `http://127.0.0.1:${pyPort}`;
    await waitFor(async () => (await fetch(`${py}/VERSION`).catch(() => undefined))?.ok === true, {
      timeoutMs: 10_000,
      what: 'python3 -m http.server',
    });
    assert.is(await rangeStatus(`${py}/my-app-gnu-linux-1.1.tar.gz`), 200, 'Python ignores Range');
    pointHostAt(w, py);
    const out = await update(w);
    assert.match(out, /downloading the whole release/);
    assert.is((await statusOf(w.deploy)).lastInstall.way, 'full');
  } finally {
    python.kill('SIGKILL');
  }

  if (!existsSync(NGINX)) {
    console.log(`skipped the nginx half: ${NGINX} is not installed (apt-get install nginx-light)`);
    return;
  }
  await w.publish('1.2', { files: FILES, patches: 0 });
  const port = await freePort();
  const site = docsSnippet()
    .replace(/listen 80;/, `listen 127.0.0.1:${port};`)
    .replace(/root \/srv\/app-updates;/, `root ${w.updates};`);
  assert.ok(site.includes(`root ${w.updates};`) && site.includes(`127.0.0.1:${port}`), site);
  const nginx = await startNginx(site, port, { ready: '/VERSION' });
  try {
    assert.is(await rangeStatus(`${nginx.url}/my-app-gnu-linux-1.2.tar.gz`), 206, 'nginx answers Range');
    const version = await fetch(`${nginx.url}/VERSION`);
    assert.is(version.headers.get('cache-control'), 'no-cache');
    await version.arrayBuffer();
    pointHostAt(w, nginx.url);
    const out = await update(w);
    assert.match(out, /rebuilt my-app-gnu-linux-1\.2\.tar\.gz from 1\.1 and \d+ bytes of the tarball/);
    assert.is((await statusOf(w.deploy)).lastInstall.way, 'files');
  } finally {
    nginx.stop();
  }
}

test.run();
