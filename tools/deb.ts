// npm run deb [-- --version V] [--no-bundle]: dist/shipkit_VERSION_all.deb, built with dpkg-deb,
// laid out as docs/design.md says:
//   /usr/lib/shipkit/shipkit.mjs   the one file (every script, litpro included)
//   /usr/lib/shipkit/run           finds Node.js ≥ 20 and runs the one file; the link's name picks the script
//   /usr/bin/shipkit, hook-server, server-update, slave-activate, launchfit   links to run
//   /usr/lib/shipkit/bin/build, release   links to run: the job commands hook-server starts (sudoers-able)
//   /lib/systemd/system/           the units of templates/, started through the links above
//   /etc/shipkit/shipkit.yml       a conffile (kept on upgrade)
//   /usr/share/doc/shipkit/        README, docs, copyright, examples (templates, hooks, example configs)
// The maintainer scripts (tools/deb/postinst, prerm, postrm) create the shipkit system user and
// /var/lib/shipkit; the package depends on no nodejs (Debian 12's is 18): run checks instead.
import { chmod, copyFile, cp, mkdir, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import path from 'node:path';
import { tmpdir } from 'node:os';
import { mkdtemp } from 'node:fs/promises';
import minimist from 'minimist';
import { $ } from '../lib/core/shell.ts';

const root = path.resolve(import.meta.dirname, '..');
const args = minimist(process.argv.slice(2), {
  string: ['version', 'out'],
  boolean: ['bundle'],
  default: { bundle: true },
});
const pkg = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8')) as {
  version: string;
  description: string;
};
const version = String(args.version ?? pkg.version);
if (!/^[0-9][A-Za-z0-9.+~]*$/.test(version))
  throw new Error(`${version} is not a Debian native version: use digits, letters, ".", "+" and "~".`);
const outDir = path.resolve(args.out ?? path.join(root, 'dist'));
const maintainer =
  process.env.DEBEMAIL && process.env.DEBFULLNAME
    ? `${process.env.DEBFULLNAME} <${process.env.DEBEMAIL}>`
    : 'shipkit maintainers <shipkit@example.org>';
// Reproducible dates: SOURCE_DATE_EPOCH, else the last commit's.
const epoch =
  Number(
    process.env.SOURCE_DATE_EPOCH ??
      (await $({ cwd: root, quiet: true, nothrow: true })`git log -1 --format=%ct`).stdout.trim(),
  ) || Math.floor(Date.now() / 1000);

/** The programs on the PATH; the generic names (build, logs, …) are `shipkit NAME` only. */
const ON_PATH = ['shipkit', 'hook-server', 'server-update', 'slave-activate', 'launchfit'];
const JOB_COMMANDS = ['build', 'release'];

/** Each installed unit: its template, and the ExecStart that runs the installed program. */
const UNITS: Record<string, { exec?: string; env?: string[] }> = {
  'hook-server.service': {
    exec: '/usr/bin/hook-server --config /etc/shipkit/shipkit.yml --grace 60 $SHIPKIT_HOOK_ARGS',
    env: ['SHIPKIT_BUILD_COMMAND=/usr/lib/shipkit/bin/build', 'SHIPKIT_RELEASE_COMMAND=/usr/lib/shipkit/bin/release'],
  },
  'shipkit-worker.service': {
    exec: '/usr/bin/shipkit worker --config /etc/shipkit/shipkit.yml --grace 60',
    env: ['SHIPKIT_BUILD_COMMAND=/usr/lib/shipkit/bin/build', 'SHIPKIT_RELEASE_COMMAND=/usr/lib/shipkit/bin/release'],
  },
  'launchfit@.service': { exec: '/usr/bin/launchfit run --dir /srv/%i' },
  'shipkit-build@.service': { exec: '/usr/bin/shipkit build %I' },
  'shipkit-build@.timer': {},
  'shipkit-logs-rotate.service': { exec: '/usr/bin/shipkit logs rotate' },
  'shipkit-logs-rotate.timer': {},
  'shipkit-backup.service': {
    exec: '/usr/bin/shipkit backup --into /var/backups/shipkit --keep ${SHIPKIT_BACKUP_KEEP} $SHIPKIT_BACKUP_ARGS',
  },
  'shipkit-backup.timer': {},
};
const EXAMPLES = ['shipkit.example.yml', 'launchify.example.yml', 'manifest.example.txt'];

/**
 * A template unit wired to the package: its ExecStart replaced, the commented alternatives and
 * the install instructions of the header (which are for the npm layout) left out.
 */
export function wireUnit(name: string, text: string, { exec, env = [] }: { exec?: string; env?: string[] }): string {
  const lines = text.split('\n');
  let start = 0;
  while (start < lines.length && lines[start].startsWith('#')) start++;
  const body = lines
    .slice(start)
    .filter(
      (line, i, all) =>
        !/^#\s*ExecStart=/.test(line) && !(/^#.*:\s*$/.test(line) && /^#\s*ExecStart=/.test(all[i + 1] ?? '')),
    );
  const execs = body.filter((line) => line.startsWith('ExecStart='));
  if (exec && execs.length !== 1)
    throw new Error(`templates/${name} has ${execs.length} ExecStart= lines; the package expects exactly one.`);
  const wired = body.flatMap((line) => {
    if (line.startsWith('ExecStart=') && exec) return [...env.map((e) => `Environment=${e}`), `ExecStart=${exec}`];
    if (line.startsWith('Documentation=')) return ['Documentation=file:///usr/share/doc/shipkit/README.md.gz'];
    return [line];
  });
  return [
    `# ${name}, installed by the shipkit Debian package. Change it with a drop-in:`,
    `#   systemctl edit ${name.replace('@.', '@NAME.')}`,
    `# The commented original: /usr/share/doc/shipkit/examples/templates/${name}`,
    ...wired,
  ].join('\n');
}

/** A man page made from a program's --help text. */
function manPage(name: string, about: string, help: string): string {
  const escape = (s: string) => s.replace(/\\/g, '\\e').replace(/^([.'])/gm, '\\&$1');
  return `.TH ${name.toUpperCase()} 1 "" "shipkit ${version}" "shipkit"\n.SH NAME\n${name} \\- ${escape(about)}\n.SH DESCRIPTION\n.nf\n${escape(help.trimEnd())}\n.fi\n.SH SEE ALSO\n/usr/share/doc/shipkit/README.md.gz\n`;
}

async function writeGzip(file: string, text: string | Buffer): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  // gzip -9n: no name or time stamp in the header (reproducible, as lintian asks).
  await writeFile(file, gzipSync(text, { level: 9 }), { mode: 0o644 });
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(full)));
    else if (entry.isFile()) out.push(full);
  }
  return out;
}

const stage = await mkdtemp(path.join(tmpdir(), 'shipkit-deb-'));
try {
  // A fresh bundle of its own (not dist/shipkit.mjs, which other builds may be writing), unless --no-bundle.
  let bundle = path.join(root, 'dist', 'shipkit.mjs');
  if (args.bundle) {
    const built = path.join(stage, 'build');
    await $({
      cwd: root,
      stdio: ['ignore', 'inherit', 'inherit'],
    })`${process.execPath} --import ${path.join(root, 'node_modules/tsx/dist/loader.mjs')} tools/bundle.ts shipkit --outdir ${built}`;
    bundle = path.join(built, 'shipkit.mjs');
  }
  await stat(bundle).catch(() => {
    throw new Error('dist/shipkit.mjs is missing: run npm run bundle first, or leave out --no-bundle.');
  });
  const at = (...parts: string[]) => path.join(stage, ...parts);
  const lib = at('usr/lib/shipkit');
  await mkdir(path.join(lib, 'bin'), { recursive: true });
  // run starts it with the node it found: no `#!/usr/bin/env node`, which would name an interpreter
  // no Debian package of this machine may satisfy.
  await writeFile(path.join(lib, 'shipkit.mjs'), (await readFile(bundle, 'utf8')).replace(/^#!.*\n/, ''), {
    mode: 0o644,
  });
  await copyFile(path.join(root, 'tools/deb/run'), path.join(lib, 'run'));
  await chmod(path.join(lib, 'run'), 0o755);
  for (const name of JOB_COMMANDS) await symlink('../run', path.join(lib, 'bin', name));
  await mkdir(at('usr/bin'), { recursive: true });
  for (const name of ON_PATH) await symlink('../lib/shipkit/run', at('usr/bin', name));

  await mkdir(at('lib/systemd/system'), { recursive: true });
  for (const [name, wiring] of Object.entries(UNITS)) {
    await writeFile(
      at('lib/systemd/system', name),
      wireUnit(name, await readFile(path.join(root, 'templates', name), 'utf8'), wiring),
      { mode: 0o644 },
    );
  }
  await mkdir(at('etc/shipkit'), { recursive: true });
  await copyFile(path.join(root, 'tools/deb/shipkit.yml'), at('etc/shipkit/shipkit.yml'));
  await chmod(at('etc/shipkit/shipkit.yml'), 0o644);

  const doc = at('usr/share/doc/shipkit');
  await writeGzip(path.join(doc, 'README.md.gz'), await readFile(path.join(root, 'README.md')));
  for (const entry of await readdir(path.join(root, 'docs'), { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const rel = path.relative(path.join(root, 'docs'), path.join(entry.parentPath, entry.name));
    await writeGzip(path.join(doc, 'docs', `${rel}.gz`), await readFile(path.join(root, 'docs', rel)));
  }
  const date = new Date(epoch * 1000).toUTCString().replace(/GMT$/, '+0000');
  await writeGzip(
    path.join(doc, 'changelog.gz'),
    `shipkit (${version}) unstable; urgency=medium\n\n  * Built from the shipkit sources with npm run deb.\n\n -- ${maintainer}  ${date}\n`,
  );
  const licenseText = await readFile(path.join(root, 'LICENSE'), 'utf8');
  const copyright = /^Copyright \(c\) (.*)$/m.exec(licenseText)?.[1] ?? 'the shipkit authors';
  const license = licenseText
    .slice(licenseText.search(/^Permission/m))
    .trim()
    .split('\n')
    .map((l) => (l.trim() ? ` ${l}` : ' .'))
    .join('\n');
  await writeFile(
    path.join(doc, 'copyright'),
    `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: shipkit\nComment: usr/lib/shipkit/shipkit.mjs also holds the npm packages shipkit uses (minimist, chalk,\n yaml, tar, zx, @aws-sdk/client-s3, openpgp, litpro and their dependencies), each under\n its own license as published on npm (MIT, ISC, Apache-2.0, LGPL-3.0+ for openpgp).\n\nFiles: *\nCopyright: ${copyright}\nLicense: MIT\n\nLicense: MIT\n${license}\n`,
    { mode: 0o644 },
  );
  const examples = path.join(doc, 'examples');
  await cp(path.join(root, 'templates'), path.join(examples, 'templates'), { recursive: true });
  await cp(path.join(root, 'hooks'), path.join(examples, 'hooks'), { recursive: true });
  for (const file of EXAMPLES) await copyFile(path.join(root, file), path.join(examples, file));
  for (const file of await filesUnder(examples)) await chmod(file, 0o644);

  const manDir = at('usr/share/man/man1');
  const listing = (await $({ quiet: true })`${process.execPath} ${bundle} --help`).stdout;
  for (const name of ON_PATH) {
    const help = (await $({ quiet: true })`${process.execPath} ${bundle} ${name === 'shipkit' ? [] : [name]} --help`)
      .stdout;
    const about =
      name === 'shipkit'
        ? 'run the shipkit scripts'
        : (new RegExp(`^  ${name} +(.*)$`, 'm').exec(listing)?.[1] ?? name);
    await writeGzip(path.join(manDir, `${name}.1.gz`), manPage(name, about, help));
  }

  const debian = at('DEBIAN');
  await mkdir(debian, { mode: 0o755 });
  for (const script of ['postinst', 'prerm', 'postrm']) {
    await copyFile(path.join(root, 'tools/deb', script), path.join(debian, script));
    await chmod(path.join(debian, script), 0o755);
  }
  await writeFile(path.join(debian, 'conffiles'), '/etc/shipkit/shipkit.yml\n', { mode: 0o644 });
  if (args.bundle) await rm(path.dirname(bundle), { recursive: true });
  const files = (await filesUnder(stage)).filter(
    (f) => !f.startsWith(debian + path.sep) && !f.startsWith(at('etc') + path.sep),
  );
  const sums = await Promise.all(
    files.map(
      async (f) =>
        `${createHash('md5')
          .update(await readFile(f))
          .digest('hex')}  ${path.relative(stage, f)}`,
    ),
  );
  await writeFile(path.join(debian, 'md5sums'), `${sums.sort().join('\n')}\n`, { mode: 0o644 });
  const installedKb = Math.ceil(
    (await Promise.all((await filesUnder(stage)).map(async (f) => (await stat(f)).size))).reduce((a, b) => a + b, 0) /
      1024,
  );
  await writeFile(
    path.join(debian, 'control'),
    [
      'Package: shipkit',
      `Version: ${version}`,
      'Architecture: all',
      `Maintainer: ${maintainer}`,
      `Installed-Size: ${installedKb}`,
      'Depends: adduser, git',
      'Recommends: ca-certificates, zstd', // zstd: delta updates (release publish makes patches, launchfit applies them)
      'Suggests: sudo, rsync, openssh-client, postgresql-client',
      'Section: devel',
      'Priority: optional',
      'Description: self-hosted deployment toolkit (webhook builds, fleet updates, signed releases)',
      ' shipkit receives forge webhooks and builds the pushed repositories (pull,',
      ' downloads, npm ci, litpro, upload by rsync, S3 or git), updates a fleet with',
      ' signed requests, and installs, supervises and rolls back signed app releases',
      ' (launchfit).',
      ' .',
      ' It needs Node.js 20 or newer, which Debian 12 does not ship: install one (for',
      ' example from nodejs.org) in the PATH, /usr/local/bin or /opt/node*/bin.',
      '',
    ].join('\n'),
    { mode: 0o644 },
  );

  await mkdir(outDir, { recursive: true });
  const deb = path.join(outDir, `shipkit_${version}_all.deb`);
  await rm(deb, { force: true });
  await $({ quiet: true })`dpkg-deb --root-owner-group -Zxz --build ${stage} ${deb}`;
  console.log(`${path.relative(process.cwd(), deb) || deb}  ${((await stat(deb)).size / 1024).toFixed(0)} KB`);
} finally {
  await rm(stage, { recursive: true, force: true });
}
