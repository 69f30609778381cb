// Part of `npm run bench:build`: the install step of a rebuild whose lockfile changed, with the
// repo's npm cache (`build`), against a clean one (`build --no-cache`: node_modules removed, a
// fresh npm cache). The dependencies are real packages: every dependency-free, unscoped package in
// this repo's node_modules without install scripts, packed with `npm pack` and served by a local
// registry on 127.0.0.1 (test/_helpers/npm-registry.ts), optionally with a delay per request to stand in
// for a registry across the internet. Two lockfiles (all packages, all but one) alternate, so
// every cached build installs after a lockfile change; the clean builds run between them.
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { $ } from '../lib/core/shell.ts';
import { makeBareRepo, runScript } from '../test/_helpers/common.ts';
import { lockDependencies, packPackages, startNpmRegistry, type PackedPackage } from '../test/_helpers/npm-registry.ts';

const ROOT = path.resolve(import.meta.dirname, '..');

/** Dependency-free, unscoped packages of this checkout, without install scripts. */
function localPackages(limit: number): string[] {
  const dirs: string[] = [];
  const modules = path.join(ROOT, 'node_modules');
  for (const name of readdirSync(modules).sort()) {
    if (name.startsWith('.') || name.startsWith('@')) continue;
    const file = path.join(modules, name, 'package.json');
    if (!existsSync(file)) continue;
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as {
      name?: string;
      dependencies?: object;
      optionalDependencies?: object;
      peerDependencies?: object;
      scripts?: Record<string, string>;
    };
    if (pkg.name !== name) continue;
    if ([pkg.dependencies, pkg.optionalDependencies, pkg.peerDependencies].some((d) => d && Object.keys(d).length))
      continue;
    if (['preinstall', 'install', 'postinstall', 'prepare'].some((s) => pkg.scripts?.[s])) continue;
    dirs.push(path.join(modules, name));
  }
  return dirs.slice(0, limit);
}

function median(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** The install step's own line in the job's log: `--- step install ok (4.1 s): npm ci 4.0 s, cache hit: …`. */
function installLine(logFile: string): { secs: number; note: string } {
  const lines = readFileSync(logFile, 'utf8').match(/--- step install ok \(([\d.]+) s\): ([^\n]*)/g) ?? [];
  const last = /--- step install ok \(([\d.]+) s\): ([^\n]*)/.exec(lines[lines.length - 1] ?? '');
  if (!last) throw new Error(`no install line in ${logFile}`);
  return { secs: Number(last[1]), note: last[2] };
}

export async function benchInstall({
  base,
  runs,
  latencyMs,
  limit,
}: {
  base: string;
  runs: number;
  latencyMs: number;
  limit: number;
}): Promise<void> {
  const packed: PackedPackage[] = await packPackages(localPackages(limit), path.join(base, 'tarballs'));
  const bytes = packed.reduce((sum, p) => sum + readFileSync(p.tarball).length, 0);
  const registry = await startNpmRegistry(packed, { latencyMs });
  try {
    // The package dropped from the second lockfile: the smallest, so both lockfiles install alike.
    const smallest = [...packed].sort((a, b) => readFileSync(a.tarball).length - readFileSync(b.tarball).length)[0];
    const all = await lockDependencies(path.join(base, 'lock-all'), packed, registry);
    const most = await lockDependencies(
      path.join(base, 'lock-most'),
      packed.filter((p) => p !== smallest),
      registry,
    );
    const repo = await makeBareRepo(path.join(base, 'git-install'), 'app', all);
    const config = path.join(base, 'shipkit-install.yml');
    await $`printf ${`data: ${base}/data-install\nrepos:\n  octo/app:\n    url: ${repo.bare}\n    steps: [pull, install]\n    timeout: 600\n`} > ${config}`;
    const logFile = path.join(base, 'data-install/logs/octo__app/logs.txt');
    const env = {
      NO_COLOR: '1',
      npm_config_registry: registry.url,
      npm_config_cache: undefined,
      NPM_CONFIG_CACHE: undefined,
    };
    const build = async (...args: string[]) => {
      const r = await runScript('build', ['octo/app', '--config', config, ...args], { env, timeoutMs: 600_000 });
      if (r.exitCode !== 0)
        throw new Error(`build ${args.join(' ')} failed:\n${r.stderr}\n${readFileSync(logFile, 'utf8').slice(-3000)}`);
      return installLine(logFile);
    };

    const first = await build(); // warms the repo's npm cache
    const cached: number[] = [];
    const clean: number[] = [];
    let cachedNote = '';
    let cleanNote = '';
    for (let i = 0; i < runs; i++) {
      await repo.commit(i % 2 === 0 ? most : all, `lockfile ${i}`);
      const c = await build();
      cached.push(c.secs);
      cachedNote = c.note;
      const k = await build('--no-cache');
      clean.push(k.secs);
      cleanNote = k.note;
    }
    const [mc, mk] = [median(cached), median(clean)];
    console.log('');
    console.log(
      `install after a lockfile change, ${packed.length} packages (${(bytes / 1024 / 1024).toFixed(1)} MB of tarballs from this repo's node_modules), ` +
        `local registry${latencyMs ? ` with ${latencyMs} ms per request` : ' on loopback, no delay'}, ${runs} runs each, interleaved (${os.cpus().length} cores)`,
    );
    console.log(`${''.padEnd(44)}${['median', 'min', 'max'].map((h) => h.padStart(9)).join('')}`);
    const fmt = (s: number) => `${s.toFixed(1)} s`.padStart(9);
    console.log(
      `${'build (npm cache of the repo)'.padEnd(44)}${[mc, Math.min(...cached), Math.max(...cached)].map(fmt).join('')}`,
    );
    console.log(
      `${'build --no-cache (fresh cache, clean tree)'.padEnd(44)}${[mk, Math.min(...clean), Math.max(...clean)].map(fmt).join('')}`,
    );
    console.log(
      `clean / cached install step: ${(mk / mc).toFixed(2)}x; tarballs the registry served: ${registry.tarballRequests()}`,
    );
    console.log(`first install: ${first.note}`);
    console.log(`last cached:   ${cachedNote}`);
    console.log(`last clean:    ${cleanNote}`);
  } finally {
    await registry.close();
  }
}
