// The manifest of each release the host holds (.launchfit/manifests/NAME.manifest), kept at
// install: a patch then carries only how the new release's manifest differs from its `from`
// release's, and the host rebuilds the new one from the kept one (docs/launchfit.md "Delta
// updates"). A kept manifest is never trusted as such: what is rebuilt from it must have the
// sha256 the signed VERSION gives, else the whole manifest is fetched.
import { readFile } from 'node:fs/promises';
import { atomicWriteFile, ensureDir } from '../../core/fs.ts';
import type { Logger } from '../../core/log.ts';
import { messageOf } from '../../core/errors.ts';
import {
  byPathBytes,
  formatManifest,
  manifestLine,
  MAX_MANIFEST_BYTES,
  type ManifestEntry,
} from '../../release/format/manifest.ts';
import type { ManifestChanges } from '../../release/format/patch.ts';
import { keptManifestFile, type DeployPaths } from '../deploy-folder/state.ts';

/** Keeps `entries` as releases/NAME's manifest; a failure is logged, not thrown (it only costs bytes later). */
export async function keepManifest(paths: DeployPaths, name: string, entries: ManifestEntry[], log: Logger) {
  try {
    await ensureDir(paths.manifests, 0o700);
    // Not fsynced: a copy lost or torn by a crash is caught by its sha256 and only costs bytes.
    await atomicWriteFile(keptManifestFile(paths, name), formatManifest(entries), { mode: 0o600, durable: false });
  } catch (error) {
    log.warn(`could not keep the manifest of releases/${name} (${messageOf(error)}); a later patch fetches it whole`);
  }
}

/**
 * The new manifest's bytes: releases/NAME's kept manifest with `changes` applied (paths removed,
 * entries added or replaced), in manifest order; undefined when none is kept. The caller checks
 * the result against the signed digest.
 */
export async function rebuiltManifest(
  paths: DeployPaths,
  name: string,
  changes: ManifestChanges,
): Promise<Buffer | undefined> {
  const kept = await readFile(keptManifestFile(paths, name)).catch(() => undefined);
  if (!kept || kept.length > MAX_MANIFEST_BYTES) return undefined;
  const lines = new Map<string, string>();
  for (const line of kept.toString('utf8').split('\n')) {
    if (!line) continue;
    const entry = JSON.parse(line) as ManifestEntry;
    lines.set(entry.path, line);
  }
  for (const p of changes.removed) lines.delete(p);
  for (const e of changes.changed) lines.set(e.path, manifestLine(e));
  const sorted = [...lines.keys()].map((p) => ({ path: p })).sort(byPathBytes);
  return Buffer.from(sorted.map(({ path }) => `${lines.get(path)}\n`).join(''));
}
