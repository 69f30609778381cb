// A tiny npm registry on 127.0.0.1 for the cache tests and bench/build.ts: packuments and
// tarballs made with a real `npm pack`, so `npm install`/`npm ci` fetch from it as from
// registry.npmjs.org, with no internet. It counts the tarball requests (what a cache saves).
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { $ } from '../../lib/core/shell.ts';

export interface PackedPackage {
  name: string;
  version: string;
  manifest: Record<string, unknown>;
  tarball: string;
}

export interface NpmRegistry {
  url: string;
  /** Tarball requests answered so far. */
  tarballRequests: () => number;
  close: () => Promise<void>;
}

/** `npm pack` of a package folder into `dest`: its manifest and the .tgz path. */
export async function packPackage(dir: string, dest: string): Promise<PackedPackage> {
  return (await packPackages([dir], dest))[0];
}

/** `npm pack` of several package folders in one npm run (as `npm publish` would pack them). */
export async function packPackages(dirs: string[], dest: string): Promise<PackedPackage[]> {
  mkdirSync(dest, { recursive: true });
  const out = await $({ quiet: true, cwd: dest })`npm pack --json --ignore-scripts --pack-destination ${dest} ${dirs}`;
  const infos = JSON.parse(out.stdout) as Array<{ filename: string }>;
  return dirs.map((dir, i) => {
    const manifest = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as Record<string, unknown>;
    return {
      name: String(manifest.name),
      version: String(manifest.version),
      manifest,
      tarball: path.join(dest, infos[i].filename),
    };
  });
}

/** A package folder with an index.js of about `size` bytes, packed: for tests that need a few. */
export async function makePackage(base: string, name: string, version = '1.0.0', size = 2000): Promise<PackedPackage> {
  const dir = path.join(base, 'src', `${name}-${version}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name, version, main: 'index.js' }));
  writeFileSync(path.join(dir, 'index.js'), `module.exports = ${JSON.stringify(name)};\n// ${'x'.repeat(size)}\n`);
  return packPackage(dir, path.join(base, 'tarballs'));
}

/**
 * Serves `packages` (unscoped names) at `GET /NAME` and `GET /NAME/-/FILE.tgz`; each answer
 * waits `latencyMs` first, to stand in for a registry across the internet.
 */
export async function startNpmRegistry(packages: PackedPackage[], { latencyMs = 0 } = {}): Promise<NpmRegistry> {
  let tarballs = 0;
  let url = '';
  const byName = new Map<string, PackedPackage[]>();
  for (const p of packages) byName.set(p.name, [...(byName.get(p.name) ?? []), p]);
  const server = http.createServer((req, res) => {
    setTimeout(() => {
      const parts = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)
        .split('/')
        .filter(Boolean);
      const versions = byName.get(parts[0] ?? '');
      if (!versions)
        return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
      if (parts.length === 1) {
        const doc = {
          name: parts[0],
          'dist-tags': { latest: versions[versions.length - 1].version },
          versions: Object.fromEntries(
            versions.map((p) => [p.version, { ...p.manifest, name: p.name, version: p.version, dist: distOf(p, url) }]),
          ),
        };
        return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(doc));
      }
      const wanted = versions.find((p) => path.basename(p.tarball) === parts[parts.length - 1]);
      if (parts[1] !== '-' || !wanted) return void res.writeHead(404).end();
      tarballs++;
      res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(readFileSync(wanted.tarball));
    }, latencyMs);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  return {
    url,
    tarballRequests: () => tarballs,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function distOf(p: PackedPackage, base: string) {
  const bytes = readFileSync(p.tarball);
  return {
    tarball: `${base}${p.name}/-/${path.basename(p.tarball)}`,
    shasum: createHash('sha1').update(bytes).digest('hex'),
    integrity: `sha512-${createHash('sha512').update(bytes).digest('base64')}`,
  };
}

/** package.json depending on `packages` and its package-lock.json, written by npm from `registry`. */
export async function lockDependencies(
  dir: string,
  packages: PackedPackage[],
  registry: NpmRegistry,
): Promise<Record<string, string>> {
  mkdirSync(dir, { recursive: true });
  const pkg = {
    name: 'app',
    version: '1.0.0',
    private: true,
    dependencies: Object.fromEntries(packages.map((p) => [p.name, p.version])),
  };
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify(pkg, null, 2));
  await $({
    quiet: true,
    cwd: dir,
    env: { ...process.env, npm_config_cache: path.join(dir, '.lock-cache') },
  })`npm install --package-lock-only --no-audit --no-fund --registry ${registry.url}`;
  return {
    'package.json': readFileSync(path.join(dir, 'package.json'), 'utf8'),
    'package-lock.json': readFileSync(path.join(dir, 'package-lock.json'), 'utf8'),
  };
}
