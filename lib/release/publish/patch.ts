// The publisher's patches (docs/release.md "Delta updates"): for each of the last releases at
// DEST, what changed since it, read from its tarball: files moved (copies), files changed in
// place (zstd --patch-from their old bytes) and new files (zstd alone), in groups of at most
// GROUP_BYTES so a host's zstd needs little memory; none when most of the release changed.
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, lstatSync, openSync, readdirSync, writeSync } from 'node:fs';
import { mkdir, open, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Logger } from '../../core/log.ts';
import { manifestLine, parseManifest, stripSingleTop, type ManifestEntry } from '../format/manifest.ts';
import type { PackIndex } from '../format/pack-index.ts';
import { gunzipMember, isRegularFile, memberOfPath, namedEntries, tarPathOf } from '../format/pack-members.ts';
import {
  formatPatchHeader,
  PATCH_FORMAT,
  type ManifestChanges,
  type PatchFile,
  type PatchGroup,
  type PatchHeader,
} from '../format/patch.ts';
import { zstdCompress } from '../../core/zstd.ts';

/** Old and new bytes of one group together stay under this (one file larger goes alone). */
export const GROUP_BYTES = 16 * 1024 * 1024;
/** A patch is made only when the bytes it must carry are at most this share of the release. */
export const MAX_CHANGED_SHARE = 0.5;
/** Old files up to this size are kept in memory while their digest is computed. */
const BUFFER_LIMIT = 16 * 1024 * 1024;

/** An old release read from its tarball: its manifest, and the old bytes of the files `wanted` named. */
export interface OldRelease {
  entries: ManifestEntry[];
  saved: Map<string, string>;
}

const stripFirst = (p: string) => p.slice(p.indexOf('/') + 1);

/**
 * Read `tarball` once: every entry's digest, and into `scratch` the bytes of each file whose path
 * (as is, or without a lone top folder) `changed` says differs in the new release. With `known`
 * (the old release's manifest, published beside its tarball) only those files are hashed, and
 * each must have the digest `known` gives.
 */
export async function readOldRelease(
  tarball: string,
  scratch: string,
  changed: (path: string, sha256: string) => boolean,
  known?: ManifestEntry[],
): Promise<OldRelease> {
  const tar = await import('tar');
  await mkdir(scratch, { recursive: true });
  const raw: ManifestEntry[] = [];
  const savedRaw = new Map<string, string>();
  const knownSha = known && new Map(known.filter((e) => e.type === 'file').map((e) => [e.path, e.sha256!]));
  const mismatched: string[] = [];
  await tar.t({
    file: tarball,
    onReadEntry: (entry) => {
      const p = entry.path.replace(/\/$/, '');
      if (entry.type === 'Directory') {
        raw.push({ path: p, type: 'dir', mode: '755', size: 0, sha256: null, target: null });
        return;
      }
      if (entry.type === 'SymbolicLink') {
        raw.push({ path: p, type: 'symlink', mode: '777', size: 0, sha256: null, target: entry.linkpath ?? '' });
        return;
      }
      const knownAs = knownSha && (knownSha.has(p) ? p : stripFirst(p));
      // Known and unchanged: not hashed, not kept (node-tar drains an entry nobody reads).
      if (knownSha && !changed(knownAs!, knownSha.get(knownAs!) ?? '')) return;
      const hash = createHash('sha256');
      const chunks: Buffer[] = [];
      let spill: { file: string; fd: number } | undefined;
      let size = 0;
      entry.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        size += chunk.length;
        if (!spill && size > BUFFER_LIMIT) {
          const file = path.join(scratch, `old-${raw.length}`);
          spill = { file, fd: openSync(file, 'w') };
          for (const c of chunks.splice(0)) writeSync(spill.fd, c);
        }
        if (spill) writeSync(spill.fd, chunk);
        else chunks.push(chunk);
      });
      entry.on('end', () => {
        const sha256 = hash.digest('hex');
        const mode = (entry.mode ?? 0o644) & 0o111 ? '755' : '644';
        raw.push({ path: p, type: 'file', mode, size, sha256, target: null });
        if (spill) closeSync(spill.fd);
        if (knownSha && knownSha.get(knownAs!) !== sha256) mismatched.push(knownAs!);
        if (!changed(p, sha256) && !changed(stripFirst(p), sha256)) return;
        const file = spill?.file ?? path.join(scratch, `old-${raw.length}`);
        if (!spill) {
          const fd = openSync(file, 'w');
          for (const c of chunks) writeSync(fd, c);
          closeSync(fd);
        }
        savedRaw.set(knownAs ?? p, file);
      });
    },
  });
  if (mismatched.length) throw new Error(`its manifest does not match its tarball (${mismatched[0]}); check DEST`);
  if (known) return { entries: known, saved: savedRaw };
  const entries = stripSingleTop(raw);
  const stripped = entries.length !== raw.length;
  const saved = new Map([...savedRaw].map(([p, file]) => [stripped ? stripFirst(p) : p, file]));
  return { entries, saved };
}

/**
 * readOldRelease with `known`, through the old tarball's index (pack-index.ts): only the gzip
 * members holding the files `changed` names are read and gunzipped, not the whole tarball. Each
 * file taken must have the size and digest `known` gives; anything else throws.
 */
export async function readOldReleaseByIndex(
  tarball: string,
  index: PackIndex,
  scratch: string,
  changed: (path: string, sha256: string) => boolean,
  known: ManifestEntry[],
): Promise<OldRelease> {
  await mkdir(scratch, { recursive: true });
  const sizes = new Map(known.map((e) => [tarPathOf(index, e.path), e.size]));
  const wanted = new Map<string, ManifestEntry>();
  for (const e of known) if (e.type === 'file' && changed(e.path, e.sha256!)) wanted.set(tarPathOf(index, e.path), e);
  const memberOf = memberOfPath(index);
  const members = new Set<number>();
  for (const p of wanted.keys()) {
    const m = memberOf.get(p);
    if (m === undefined) throw new Error(`its index does not say where ${p} is`);
    members.add(m);
  }
  const saved = new Map<string, string>();
  const file = await open(tarball, 'r');
  try {
    for (const m of [...members].sort((a, b) => a - b)) {
      const member = index.members[m]!;
      const gz = Buffer.allocUnsafe(member.bytes);
      const { bytesRead } = await file.read(gz, 0, member.bytes, member.at);
      if (bytesRead !== member.bytes) throw new Error('its tarball is shorter than its index says');
      const tar = await gunzipMember(gz, member.paths, (p) => sizes.get(p) ?? 0);
      for (const { path: p, type, body } of namedEntries(tar, member.paths)) {
        const e = wanted.get(p);
        if (!e) continue;
        const sha256 = createHash('sha256').update(body).digest('hex');
        if (!isRegularFile(type) || body.length !== e.size || sha256 !== e.sha256)
          throw new Error(`its manifest does not match its tarball (${e.path}); check DEST`);
        const out = path.join(scratch, `old-${saved.size}`);
        await writeFile(out, body);
        saved.set(e.path, out);
        wanted.delete(p);
      }
    }
  } finally {
    await file.close();
  }
  const missing = wanted.values().next().value;
  if (missing) throw new Error(`${missing.path} is not in the member its index gives`);
  return { entries: known, saved };
}

/** What a patch from `old` to `manifest` must carry: copies, changed files with their old bytes, and new files. */
export function planPatch(old: OldRelease, manifest: ManifestEntry[]) {
  const oldByPath = new Map(old.entries.map((e) => [e.path, e]));
  const oldByDigest = new Map<string, string>();
  for (const e of old.entries) if (e.type === 'file' && !oldByDigest.has(e.sha256!)) oldByDigest.set(e.sha256!, e.path);
  const copies: PatchHeader['copies'] = [];
  const delta: PatchFile[] = [];
  const whole: PatchFile[] = [];
  for (const e of manifest) {
    if (e.type !== 'file') continue;
    const before = oldByPath.get(e.path);
    if (before?.type === 'file' && before.sha256 === e.sha256) continue;
    const moved = oldByDigest.get(e.sha256!);
    if (moved !== undefined) copies.push({ path: e.path, from: moved, sha256: e.sha256! });
    else if (before?.type === 'file' && old.saved.has(e.path))
      delta.push({
        path: e.path,
        size: e.size,
        sha256: e.sha256!,
        from: e.path,
        from_size: before.size,
        from_sha256: before.sha256!,
      });
    else whole.push({ path: e.path, size: e.size, sha256: e.sha256! });
  }
  const carried = [...delta, ...whole].reduce((sum, f) => sum + f.size, 0);
  return { copies, delta, whole, carried };
}

/** How `manifest` differs from the old release's entries, line for line. */
export function manifestChanges(old: ManifestEntry[], manifest: ManifestEntry[]): ManifestChanges {
  const oldLines = new Map(old.map((e) => [e.path, manifestLine(e)]));
  const paths = new Set(manifest.map((e) => e.path));
  return {
    removed: old.filter((e) => !paths.has(e.path)).map((e) => e.path),
    changed: manifest.filter((e) => oldLines.get(e.path) !== manifestLine(e)),
  };
}

/** Whether a patch carrying `carried` bytes is not worth making (said in the log when so). */
function tooMuchChanged(carried: number, manifest: ManifestEntry[], from: string, log: Logger): boolean {
  const total = manifest.reduce((sum, e) => sum + e.size, 0);
  if (carried <= total * MAX_CHANGED_SHARE) return false;
  log.info('no patch: most of the release changed', { from, changed: carried, total });
  return true;
}

/** An old release's own manifest (published beside its tarball), or undefined when it cannot be read. */
export function oldManifestOf(bytes: Buffer | undefined): ManifestEntry[] | undefined {
  if (!bytes) return undefined;
  try {
    return parseManifest(bytes);
  } catch {
    return undefined;
  }
}

/** Whether the old release's manifest already shows that most of the release changed: no patch, no tarball read. */
export function mostChangedSince(old: ManifestEntry[], manifest: ManifestEntry[], from: string, log: Logger) {
  // What a patch carries counts changed files whether sent as a delta or whole: no old bytes needed.
  return tooMuchChanged(planPatch({ entries: old, saved: new Map() }, manifest).carried, manifest, from, log);
}

/** Files split into runs whose bytes (old and new) stay under GROUP_BYTES. */
function chunk(files: PatchFile[]): PatchFile[][] {
  const out: PatchFile[][] = [];
  let run: PatchFile[] = [];
  let bytes = 0;
  for (const f of files) {
    const own = f.size + (f.from_size ?? 0);
    if (run.length && bytes + own > GROUP_BYTES) {
      out.push(run);
      run = [];
      bytes = 0;
    }
    run.push(f);
    bytes += own;
  }
  if (run.length) out.push(run);
  return out;
}

async function concat(files: string[], out: string): Promise<void> {
  const sink = createWriteStream(out);
  for (const file of files) await pipeline(createReadStream(file), sink, { end: false });
  await new Promise<void>((resolve, reject) => sink.end((error?: Error | null) => (error ? reject(error) : resolve())));
}

/**
 * Write the patch from `old` (version `from`) to the release in `newDir` into `out`; undefined
 * when it would carry more than MAX_CHANGED_SHARE of the release (the host downloads it whole).
 */
export async function makePatch(opts: {
  old: OldRelease;
  from: string;
  to: string;
  newDir: string;
  manifest: ManifestEntry[];
  scratch: string;
  out: string;
  log: Logger;
}): Promise<{ sha256: string; size: number } | undefined> {
  const { old, manifest, scratch, log } = opts;
  const plan = planPatch(old, manifest);
  if (tooMuchChanged(plan.carried, manifest, opts.from, log)) return undefined;
  const newPath = newPathOf(opts.newDir);
  const groups: PatchGroup[] = [];
  const blobs: string[] = [];
  const runs = [
    ...chunk(plan.delta).map((files) => ({ kind: 'delta' as const, files })),
    ...chunk(plan.whole).map((files) => ({ kind: 'whole' as const, files })),
  ];
  for (const [i, run] of runs.entries()) {
    const input = path.join(scratch, `new-${i}`);
    const blob = path.join(scratch, `blob-${i}`);
    await concat(
      run.files.map((f) => newPath(f.path)),
      input,
    );
    const inputBytes = run.files.reduce((sum, f) => sum + f.size, 0);
    let dict: string | undefined;
    let dictBytes = 0;
    if (run.kind === 'delta') {
      dict = path.join(scratch, `dict-${i}`);
      await concat(
        run.files.map((f) => old.saved.get(f.from!)!),
        dict,
      );
      dictBytes = run.files.reduce((sum, f) => sum + f.from_size!, 0);
    }
    await zstdCompress({ input, output: blob, dict, dictBytes, inputBytes, level: inputBytes <= 4 << 20 ? 19 : 9 });
    groups.push({ kind: run.kind, bytes: (await stat(blob)).size, files: run.files });
    blobs.push(blob);
  }
  const header: PatchHeader = {
    format: PATCH_FORMAT,
    from: opts.from,
    to: opts.to,
    manifest: manifestChanges(old.entries, manifest),
    copies: plan.copies,
    groups,
  };
  return writePatch(opts.out, formatPatchHeader(header), blobs);
}

/** Where a manifest path's bytes are in the folder being published (a lone top folder was stripped). */
function newPathOf(dir: string): (p: string) => string {
  const top = readdirSync(dir);
  const base = top.length === 1 && lstatSync(path.join(dir, top[0])).isDirectory() ? path.join(dir, top[0]) : dir;
  return (p) => path.join(base, p);
}

async function writePatch(out: string, head: Buffer, blobs: string[]): Promise<{ sha256: string; size: number }> {
  const sink = createWriteStream(out);
  sink.write(head);
  for (const blob of blobs) await pipeline(createReadStream(blob), sink, { end: false });
  await new Promise<void>((resolve, reject) => sink.end((error?: Error | null) => (error ? reject(error) : resolve())));
  const hash = createHash('sha256');
  let size = 0;
  for await (const c of createReadStream(out)) {
    hash.update(c as Buffer);
    size += (c as Buffer).length;
  }
  return { sha256: hash.digest('hex'), size };
}
