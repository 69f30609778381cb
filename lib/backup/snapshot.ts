// `shipkit backup --to DEST` (docs/backup.md): one consistent copy of hook-server's control plane
// while it runs: shipkit.yml, DATA (journal, jobs, pushes, fleet registry, sessions, logs), its
// secret files encrypted to --encrypt-to or left out, and MANIFEST.json written last.
import { createHash } from 'node:crypto';
import { chmod, lstat, open, readdir, readFile, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, ValidationError, WorkError, messageOf } from '../core/errors.ts';
import { openRegularFile } from '../core/regular-file.ts';
import { atomicWriteFile } from '../core/fs.ts';
import type { Logger } from '../core/log.ts';
import type { ShipkitConfig } from '../config/shipkit-yml.ts';
import { BACKUP_FORMAT, DATABASE_PART, MANIFEST, type Manifest, type Part, type PartKind } from './manifest.ts';
import { sha256File } from '../core/fs.ts';

export interface BackupOptions {
  config: ShipkitConfig;
  to: string;
  /** Encrypts a secret file for the backup (pgp.ts encrypterFor); without it secret files are left out. */
  encrypt?: (bytes: Buffer) => Promise<Buffer>;
  /** Keep only job logs changed in the last DAYS days (default: all). */
  logsDays?: number;
  /** With queue: the database to dump (database.ts) and how messages name it; absent: no database part. */
  database?: { where: string; dump: (file: string) => Promise<void> };
  /** Signs MANIFEST.json (MANIFEST.json.sig) when given. */
  sign?: (data: Buffer) => Promise<Buffer>;
  /** The signing key's fingerprint, recorded in the manifest (signed_by) so that a check without a key says so. */
  signedBy?: string;
  version: string;
  log: Logger;
  now?: Date;
}

export interface BackupResult {
  to: string;
  parts: number;
  bytes: number;
  leftOut: string[];
}

/** Files that are never in a backup: locks, temp files, clones (a build clones again). */
const SKIPPED = [/^tmp(\/|$)/, /^repos(\/|$)/, /\.lock$/, /\.takeover$/, /(^|\/)\.[^/]*\.tmp-/];
/** Append-only logs of lines (the journal, fleet.log, the audit trail): copied up to the last whole line, so every record in the copy is whole. */
const APPEND_ONLY = /(\.journal|(^|\/)fleet\/fleet\.log|(^|\/)audit\/audit\.jsonl)$/;
/** The audit trail's head, kept in DATA apart from the trail (lib/audit/head.ts AUDIT_HEAD_FILE). */
const AUDIT_HEAD = 'audit-head.json';

export async function takeBackup(options: BackupOptions): Promise<BackupResult> {
  const { config, to, log } = options;
  const inData = path.relative(path.resolve(config.data), path.resolve(to));
  if (!inData.startsWith('..') && !path.isAbsolute(inData))
    throw new ConfigError(
      `${to} is inside the data folder ${config.data}: a backup there would copy itself and every earlier ` +
        `one. Put backups outside it. Nothing was written.`,
    );
  await emptyTarget(to);
  const configDir = path.dirname(config.file);
  const secretFiles = secretFilesOf(config);
  const encrypt = options.encrypt;
  const parts: Part[] = [];
  const leftOut: string[] = [];
  try {
    parts.push(await copyConfig(options, leftOut));
    for (const file of secretFiles) {
      const rel = path.relative(configDir, file);
      if (!encrypt) {
        leftOut.push(rel);
        continue;
      }
      parts.push(await writePart(to, secretPartOf(config, file), await encrypt(await readFile(file)), 'secret'));
    }
    const since =
      options.logsDays === undefined ? 0 : (options.now ?? new Date()).getTime() - options.logsDays * 86_400_000;
    // The audit trail's kept head before the trail (and the database): never ahead of the copy.
    for (const rel of (await walk(config.data)).sort((a, b) => +(b === AUDIT_HEAD) - +(a === AUDIT_HEAD))) {
      const file = path.join(config.data, rel);
      if (SKIPPED.some((pattern) => pattern.test(rel)) || secretFiles.includes(file) || file === config.file) continue;
      const kind: PartKind = rel.startsWith('logs/') || rel.startsWith('jobs/') ? 'log' : 'data';
      if (kind === 'log' && since > 0 && (await stat(file)).mtimeMs < since) continue;
      const part = await copyPart(file, to, `data/${rel}`, kind, APPEND_ONLY.test(rel));
      if (part) parts.push(part);
    }
    if (options.database) parts.push(await dumpPart(to, options.database.dump));
    if (leftOut.length)
      log.warn('secret files left out of the backup (give --encrypt-to to keep them, encrypted)', {
        files: leftOut.join(', '),
      });
    const manifest: Manifest = {
      format: BACKUP_FORMAT,
      shipkit: options.version,
      created: (options.now ?? new Date()).toISOString(),
      data: relativeOrAbsolute(configDir, config.data),
      ...(options.database ? { database: options.database.where } : {}),
      ...(options.sign && options.signedBy ? { signed_by: options.signedBy } : {}),
      parts,
      left_out: leftOut,
    };
    const text = Buffer.from(`${JSON.stringify(manifest, null, 1)}\n`);
    if (options.sign) await writeFile(path.join(to, `${MANIFEST}.sig`), await options.sign(text));
    await atomicWriteFile(path.join(to, MANIFEST), text, { mode: 0o600 });
  } catch (error) {
    // No half backup that looks whole: the manifest is written last, and what was written goes.
    await rm(to, { recursive: true, force: true }).catch(() => {});
    if (error instanceof ConfigError || error instanceof WorkError) throw error;
    throw new WorkError(`Backup to ${to} failed: ${messageOf(error)}; nothing was kept there.`, { cause: error });
  }
  return { to, parts: parts.length, bytes: parts.reduce((sum, p) => sum + p.size, 0), leftOut };
}

/**
 * DEST must be new or an empty folder (a backup never mixes with another), not a symbolic link;
 * it ends mode 0700 whatever it was (an empty 0777 folder is made 0700), as the secrets in it are.
 */
async function emptyTarget(to: string): Promise<void> {
  const stats = await lstat(to).catch(() => undefined);
  if (stats?.isSymbolicLink())
    throw new ConfigError(`${to} is a symbolic link; give the backup a real folder (nothing was written).`);
  const entries = await readdir(to).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [];
    throw new ConfigError(`Cannot use ${to} as the backup folder (${error.code ?? messageOf(error)}).`);
  });
  if (entries.length)
    throw new ConfigError(`${to} is not empty; give a new or empty folder for the backup (nothing was written).`);
  await mkdir(to, { recursive: true, mode: 0o700 });
  await chmod(to, 0o700).catch((error: NodeJS.ErrnoException) => {
    throw new ConfigError(`Cannot make ${to} mode 0700 (${error.code ?? messageOf(error)}); give a folder you own.`);
  });
}

/**
 * The files shipkit.yml's secrets name with `file:` inside the config folder or DATA (the first
 * start's webhook-secret and token, for one): a backup holds them only encrypted. Files
 * elsewhere (/etc/shipkit/…) are the machine's secret store and stay references.
 */
export function secretFilesOf(config: ShipkitConfig): string[] {
  const configDir = path.dirname(config.file);
  const refs = [
    ...(config.secret ?? []).map((s) => s.ref),
    config.token,
    ...[...config.repos.values()].flatMap((r) => (r.secret ?? []).map((s) => s.ref)),
    ...[...(config.fleet?.values() ?? [])].flatMap((f) => f.secrets),
    ...[config.queue ?? []].flat(),
  ];
  const inside = (file: string) => [configDir, config.data].some((dir) => !path.relative(dir, file).startsWith('..'));
  const files = refs
    .filter((ref): ref is string => typeof ref === 'string' && ref.startsWith('file:'))
    .map((ref) => path.resolve(configDir, ref.slice(5)))
    .filter(inside);
  return [...new Set(files)];
}

/** Where a secret file goes in the backup: secrets/config/REL.asc beside shipkit.yml, secrets/data/REL.asc in DATA. */
function secretPartOf(config: ShipkitConfig, file: string): string {
  const rel = path.relative(path.dirname(config.file), file);
  return rel.startsWith('..') ? `secrets/data/${path.relative(config.data, file)}.asc` : `secrets/config/${rel}.asc`;
}

/** Literal secrets written in shipkit.yml itself (webhook secret, read token, a queue URL with its password). */
function literalSecrets(config: ShipkitConfig): string[] {
  const refs = [
    ...(config.secret ?? []).map((s) => s.ref),
    config.token,
    ...[config.queue ?? []].flat().filter((url) => /^postgres(ql)?:\/\/[^/@]*:[^/@]*@/.test(url)),
    ...[...config.repos.values()].flatMap((r) => (r.secret ?? []).map((s) => s.ref)),
  ];
  return refs.filter((ref): ref is string => typeof ref === 'string' && ref !== '' && !/^(env|file):/.test(ref));
}

/**
 * shipkit.yml as it is, unless it holds literal secrets: then it is encrypted whole, or, without
 * --encrypt-to, written with each literal replaced by a reference to a variable to set.
 */
async function copyConfig(options: BackupOptions, leftOut: string[]): Promise<Part> {
  let text = await readFile(options.config.file, 'utf8');
  const literals = literalSecrets(options.config);
  if (literals.length && options.encrypt)
    return writePart(options.to, 'secrets/config/shipkit.yml.asc', await options.encrypt(Buffer.from(text)), 'secret');
  literals.forEach((literal, i) => {
    text = text.split(literal).join(`env:SHIPKIT_RESTORED_SECRET_${i + 1}`);
    leftOut.push(`shipkit.yml literal secret ${i + 1} (now env:SHIPKIT_RESTORED_SECRET_${i + 1})`);
  });
  return writePart(options.to, 'config/shipkit.yml', Buffer.from(text), 'config');
}

/** The database dumped into the backup: read back for its size and sha256 once pg_dump is done. */
async function dumpPart(to: string, dump: (file: string) => Promise<void>): Promise<Part> {
  const file = path.join(to, DATABASE_PART);
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await dump(file);
  return { path: DATABASE_PART, kind: 'database', size: (await stat(file)).size, sha256: await sha256File(file) };
}

async function writePart(to: string, rel: string, bytes: Buffer, kind: PartKind): Promise<Part> {
  const file = path.join(to, rel);
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await writeFile(file, bytes, { mode: 0o600 });
  return { path: rel, kind, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/** Read and written a MiB at a time: a 1 GB log is copied in bounded memory. */
const CHUNK = 1 << 20;

/**
 * A file as it is at one moment: its size read first, and no more than that copied; an
 * append-only log only up to its last whole line. Undefined when it went away meanwhile.
 */
async function copyPart(
  file: string,
  to: string,
  rel: string,
  kind: PartKind,
  appendOnly: boolean,
): Promise<Part | undefined> {
  let opened;
  try {
    // A file that went away, or was replaced by a link, FIFO or device since the walk: not copied.
    opened = await openRegularFile(file, { allowHardLinks: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' || error instanceof ValidationError) return undefined;
    throw error;
  }
  const { handle, size } = opened;
  try {
    const target = path.join(to, rel);
    await mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
    const out = await open(target, 'wx', 0o600);
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(Math.max(1, Math.min(CHUNK, size)));
    let position = 0;
    let whole = 0; // an append-only log's bytes up to its last newline
    try {
      while (position < size) {
        const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, size - position), position);
        if (bytesRead === 0) break;
        const chunk = buffer.subarray(0, bytesRead);
        for (let done = 0; done < bytesRead;)
          done += (await out.write(chunk, done, bytesRead - done, position + done)).bytesWritten;
        if (!appendOnly) hash.update(chunk);
        else if (chunk.lastIndexOf(0x0a) >= 0) whole = position + chunk.lastIndexOf(0x0a) + 1;
        position += bytesRead;
      }
      if (appendOnly) await out.truncate(whole);
    } finally {
      await out.close();
    }
    if (appendOnly) return { path: rel, kind, size: whole, sha256: await sha256File(target) };
    return { path: rel, kind, size: position, sha256: hash.digest('hex') };
  } finally {
    await handle.close();
  }
}

/** Every regular file under `dir`, relative, in a stable order. */
async function walk(dir: string, prefix = ''): Promise<string[]> {
  const entries = await readdir(path.join(dir, prefix), { withFileTypes: true }).catch(() => []);
  const out: string[] = [];
  for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...(await walk(dir, rel)));
    else if (entry.isFile()) out.push(rel);
  }
  return out;
}

function relativeOrAbsolute(from: string, to: string): string {
  const rel = path.relative(from, to);
  return rel.startsWith('..') || path.isAbsolute(rel) ? to : rel || '.';
}
