// Fetching a Node toolchain (lib/pipeline/node-toolchain.ts, lib/pipeline/node-registry.ts) with the
// real npm from an HTTP registry on 127.0.0.1 that serves a small `node-linux-<arch>` package whose bin/node
// is a shell script: the sha512 integrity is enforced, the package may hold only files, its
// bin/node must answer its version, a failure leaves nothing behind, two fetches of one version
// at once download it once, a cached one is used without the registry, and the repo files are read.
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as tar from 'tar';
import { startHttpServer, type RunningServer } from '../../../lib/http/server.ts';
import {
  findWantedNode,
  provideNode,
  toolchainFolderName,
  withNodeOnPath,
  type WantedNode,
} from '../../../lib/pipeline/node-toolchain.ts';
import { parseNodeRequest, type NodeRequest } from '../../../lib/config/node-version.ts';
import { StepFailure } from '../../../lib/pipeline/context.ts';
import { tmpDir } from '../../_helpers/common.ts';

const PACKAGE = `node-linux-${process.arch}`;
const base = tmpDir('shipkit-node-registry-');

/** A package tarball (gzip) with `package/bin/node` answering `answer`, plus `extra` entries. */
async function makeTarball(version: string, { answer = `v${version}`, link = false } = {}): Promise<Buffer> {
  const dir = path.join(base, `src-${version}`);
  mkdirSync(path.join(dir, 'package/bin'), { recursive: true });
  writeFileSync(path.join(dir, 'package/bin/node'), `#!/bin/sh\necho ${answer}\n`, { mode: 0o755 });
  writeFileSync(path.join(dir, 'package/LICENSE'), 'MIT\n');
  if (link) symlinkSync('/etc/passwd', path.join(dir, 'package/bin/passwd'));
  const file = path.join(base, `${version}.tgz`);
  await tar.c({ gzip: true, file, cwd: dir, portable: true }, ['package']);
  return readFileSync(file);
}

const sri = (data: Buffer) => `sha512-${createHash('sha512').update(data).digest('base64')}`;

interface Served {
  tarball: Buffer;
  integrity: string;
}
const served = new Map<string, Served>();
const hits = { metadata: 0, tarballs: new Map<string, number>() };
let server: RunningServer;

test.before(async () => {
  served.set('1.0.0', { tarball: await makeTarball('1.0.0'), integrity: '' });
  served.set('1.1.0', { tarball: await makeTarball('1.1.0'), integrity: '' });
  served.set('2.0.0', { tarball: await makeTarball('2.0.0'), integrity: sri(Buffer.from('something else')) });
  served.set('3.0.0', { tarball: await makeTarball('3.0.0', { link: true }), integrity: '' });
  served.set('4.0.0', { tarball: await makeTarball('4.0.0', { answer: 'v9.9.9' }), integrity: '' });
  for (const entry of served.values()) entry.integrity ||= sri(entry.tarball);
  server = await startHttpServer(
    (req, res) => {
      const url = req.url ?? '';
      if (url === `/${PACKAGE}`) {
        hits.metadata++;
        const versions = Object.fromEntries(
          [...served].map(([v, s]) => [
            v,
            {
              name: PACKAGE,
              version: v,
              dist: { integrity: s.integrity, tarball: `${server.url}/${PACKAGE}/-/${PACKAGE}-${v}.tgz` },
            },
          ]),
        );
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ name: PACKAGE, 'dist-tags': { latest: '1.1.0' }, versions }));
        return;
      }
      const match = /-(\d+\.\d+\.\d+)\.tgz$/.exec(url);
      const entry = match && served.get(match[1]);
      if (!entry) {
        res.writeHead(404).end();
        return;
      }
      hits.tarballs.set(match[1], (hits.tarballs.get(match[1]) ?? 0) + 1);
      // Slow enough that two fetches at once overlap.
      setTimeout(() => res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(entry.tarball), 200);
    },
    { host: '127.0.0.1', port: 0 },
  );
});

test.after(async () => {
  await server.close();
});

function wanted(text: string, from = 'shipkit.yml'): WantedNode {
  return { request: parseNodeRequest(text) as NodeRequest, from };
}

function options(root: string, lines: string[] = []) {
  return {
    dirs: { shared: path.join(root, 'toolchains'), private: path.join(root, 'state/toolchains') },
    env: {},
    deadline: Date.now() + 60_000,
    log: (line: string) => lines.push(line),
    registry: `${server.url}/`,
    ownVersion: null,
  };
}

async function fails(promise: Promise<unknown>, message: RegExp): Promise<void> {
  try {
    await promise;
  } catch (error) {
    assert.instance(error, StepFailure, String(error));
    assert.match((error as Error).message, message, (error as Error).message);
    return;
  }
  assert.unreachable('expected a StepFailure');
}

test('fetched once, verified, runnable; two builds at once download it once; then cached without the registry', async () => {
  const root = tmpDir('shipkit-tc-');
  // What a build killed while unpacking leaves: removed by the next fetch of that version.
  mkdirSync(path.join(root, 'toolchains', `.${toolchainFolderName('1.1.0')}.unpack-999999-dead/bin`), {
    recursive: true,
  });
  const lines: string[] = [];
  const [a, b] = await Promise.all([
    provideNode(wanted('1'), options(root, lines)),
    provideNode(wanted('^1.0.0', '.nvmrc'), options(root, lines)),
  ]);
  const dir = path.join(root, 'toolchains', toolchainFolderName('1.1.0'));
  assert.equal([a.version, a.bin, b.version, b.bin], ['1.1.0', path.join(dir, 'bin'), '1.1.0', path.join(dir, 'bin')]);
  assert.equal([a.how, b.how].sort(), ['cached', 'fetched'], 'one fetched, the other waited on the lock and used it');
  assert.is(hits.tarballs.get('1.1.0'), 1, 'downloaded once');
  assert.is(lines.filter((l) => l.startsWith('fetching Node 1.1.0')).length, 1);
  assert.equal(
    readdirSync(path.join(root, 'toolchains')),
    [toolchainFolderName('1.1.0')],
    'no temp, tarball or lock left',
  );
  assert.ok(existsSync(path.join(dir, 'LICENSE')));
  const metadata = hits.metadata;
  const again = await provideNode(wanted('>=1 <2'), { ...options(root), registry: 'http://127.0.0.1:9/' });
  assert.equal([again.version, again.how], ['1.1.0', 'cached']);
  assert.is(hits.metadata, metadata, 'the registry was not asked');
  // A folder someone else could have written is not used.
  chmodSync(path.join(dir, 'bin'), 0o777);
  await fails(provideNode(wanted('1.1'), options(root)), /is there but is not used: .*writable by others\. Remove it/);
});

test("shipkit's own Node when it satisfies; the chosen bin first on PATH", async () => {
  const root = tmpDir('shipkit-tc-');
  const own = await provideNode(wanted('>=20'), {
    ...options(root),
    ownVersion: '20.20.2',
    registry: 'http://127.0.0.1:9/',
  });
  assert.equal([own.version, own.how, own.bin], ['20.20.2', 'own', undefined]);
  assert.not.ok(existsSync(path.join(root, 'toolchains')));
  assert.is(
    withNodeOnPath({ PATH: '/usr/bin:/t/bin:/bin' }, { version: '1.1.0', from: 'x', how: 'cached', bin: '/t/bin' })
      .PATH,
    '/t/bin:/usr/bin:/bin',
  );
  assert.is(withNodeOnPath({ PATH: '/usr/bin' }, null).PATH, '/usr/bin');
});

test('a wrong digest, a link in the package, a bin/node that is not that version, no such version: refused, nothing left', async () => {
  const root = tmpDir('shipkit-tc-');
  await fails(
    provideNode(wanted('2'), options(root)),
    new RegExp(
      `Node 2\\.0\\.0 \\(from shipkit\\.yml\\) could not be installed: npm pack ${PACKAGE}@2\\.0\\.0 failed: .*integrity checksum failed`,
    ),
  );
  await fails(
    provideNode(wanted('3'), options(root)),
    /could not be installed: .*"package\/bin\/passwd" is a SymbolicLink entry/,
  );
  await fails(
    provideNode(wanted('4'), options(root)),
    /could not be installed: .*its bin\/node does not run here \(it said "v9\.9\.9"/,
  );
  await fails(
    provideNode(wanted('99'), options(root)),
    new RegExp(
      `^Node 99 \\(from shipkit\\.yml\\) cannot be had from the npm registry \\(${PACKAGE}@99: no such version\\); the newest is 4\\.0\\.0\\.`,
    ),
  );
  const t0 = Date.now();
  await fails(
    provideNode(wanted('1'), { ...options(root), registry: 'http://127.0.0.1:9/' }),
    /Node 1 \(from shipkit\.yml\) could not be looked up: npm view node-linux-\w+ failed: .*ECONNREFUSED/,
  );
  console.log(`  unreachable registry: refused after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  await fails(
    provideNode(wanted('1'), { ...options(root), deadline: Date.now() - 1 }),
    /could not be looked up: npm view node-linux-\w+ was not started: the job's time is up/,
  );
  assert.equal(readdirSync(path.join(root, 'toolchains')), [], 'nothing left in toolchains/');
});

test('the repo files: .nvmrc before .node-version before engines.node; shipkit.yml before all', async () => {
  const work = tmpDir('shipkit-tc-work-');
  assert.is(await findWantedNode(undefined, work), undefined);
  writeFileSync(path.join(work, 'package.json'), JSON.stringify({ engines: { node: '>=20' } }));
  assert.equal(await describe(work), ['package.json engines.node', '>=20']);
  writeFileSync(path.join(work, '.node-version'), '20.18.0\n');
  assert.equal(await describe(work), ['.node-version', '20.18.0']);
  writeFileSync(path.join(work, '.nvmrc'), '# pinned\n\nv22\n');
  assert.equal(await describe(work), ['.nvmrc', 'v22']);
  const configured = parseNodeRequest('24') as NodeRequest;
  assert.equal((await findWantedNode(configured, work))?.from, 'shipkit.yml');
  writeFileSync(path.join(work, '.nvmrc'), 'lts/*\n');
  await fails(findWantedNode(undefined, work), /The repo's \.nvmrc is "lts\/\*", an alias shipkit does not resolve/);
  writeFileSync(path.join(work, '.nvmrc'), 'x'.repeat(70 * 1024));
  await fails(findWantedNode(undefined, work), /\.nvmrc is larger than/);
});

async function describe(work: string) {
  const found = await findWantedNode(undefined, work);
  return [found?.from, found?.request.text];
}

test.run();
