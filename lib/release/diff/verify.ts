// `release diff`'s checks of one release at DEST before anything of it is read: the tarball's
// sha256 against its ledger entry, its .sig against the release key (streamed from disk, so a
// big tarball is never held in memory), its provenance's digest and source against the entry.
import { ownSignatureOver } from '../dest/seq.ts';
import { createReadStream } from 'node:fs';
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { ValidationError, messageOf } from '../../core/errors.ts';
import { sha256File } from '../../core/fs.ts';
import { sourceOfProvenance, type ReleaseSource } from './commits.ts';
import { DEFAULT_TAR_LIMITS, manifestOfTarball, type Manifest } from './files.ts';
import type { Destination } from '../dest/destination.ts';
import { LedgerError, type LedgerEntry } from '../format/ledger.ts';

const MAX_PROVENANCE_BYTES = 256 * 1024;

export interface VerifiedRelease {
  file: string;
  sha256: string;
  size: number;
  manifest: Manifest;
  source: ReleaseSource;
  /** Where `source` comes from: the provenance, or the ledger entry when the provenance file is gone. */
  sourceFrom: 'provenance' | 'ledger' | 'none';
}

/**
 * Whether `sigBytes` (binary or armored) holds a signature over the file `file` made by a (sub)key
 * bound to `certificate`'s primary, checked at the time it was made, revocations aside
 * (seq.ts's ownSignatureOver, the file streamed from disk).
 */
export async function signedByReleaseKey(certificate: string, file: string, sigBytes: Uint8Array): Promise<boolean> {
  return (await ownSignatureOver(certificate, { file }, sigBytes)) !== undefined;
}

/**
 * The release `entry` publishes, as `file` at DEST: its sha256 against the entry (LedgerError with
 * the entry's number), its .sig against the key, and only then its entries read; and its source.
 */
export async function readVerifiedRelease(
  dest: Destination,
  scratch: string,
  certificate: string,
  entry: LedgerEntry,
  file: string,
): Promise<VerifiedRelease> {
  const local = await dest.localCopy(file, scratch);
  if (!local)
    throw new ValidationError(`${file} went away from ${dest.where} while release diff read it; run it again.`);
  const sha256 = await sha256File(local);
  if (sha256 !== entry.sha256)
    throw new LedgerError(
      entry.n,
      `names ${file} with sha256 ${entry.sha256}, but the file at ${dest.where} has ${sha256}: it was ` +
        `replaced or damaged. Nothing was compared.`,
    );
  const sig = await dest.read(`${file}.sig`);
  if (!sig || !(await signedByReleaseKey(certificate, local, sig)))
    throw new ValidationError(
      `${file}.sig at ${dest.where} is ${sig ? 'not a signature of it by this release key' : 'missing'}; nothing was compared.`,
    );
  const size = (await stat(local)).size;
  const manifest = await manifestOfTarball(
    createReadStream(local, { highWaterMark: 64 * 1024 }),
    `${file} at ${dest.where}`,
    DEFAULT_TAR_LIMITS,
  );
  return { file, sha256, size, manifest, ...(await sourceOf(dest, entry, file, sha256)) };
}

const sha256Of = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** The release's source from its provenance, checked against the entry's digest and source; the entry's own when the file is gone. */
async function sourceOf(
  dest: Destination,
  entry: LedgerEntry,
  file: string,
  sha256: string,
): Promise<Pick<VerifiedRelease, 'source' | 'sourceFrom'>> {
  const name = `${file.slice(0, -'.tar.gz'.length)}.intoto.jsonl`;
  const bytes = entry.provenance_sha256 ? await dest.read(name) : undefined;
  if (!bytes) return { source: entry.source, sourceFrom: entry.source.repo ? 'ledger' : 'none' };
  if (bytes.length > MAX_PROVENANCE_BYTES || sha256Of(bytes) !== entry.provenance_sha256)
    throw new LedgerError(
      entry.n,
      `names ${name} with sha256 ${entry.provenance_sha256}, but the file at ${dest.where} is another; it ` +
        `was replaced. Nothing was compared.`,
    );
  let source: ReleaseSource;
  try {
    source = sourceOfProvenance(bytes, sha256);
  } catch (error) {
    throw new LedgerError(entry.n, `names ${name}, which cannot be read: ${messageOf(error)}.`);
  }
  if (source.repo !== entry.source.repo || source.commit !== entry.source.commit)
    throw new LedgerError(
      entry.n,
      `records another source than ${name} (repo or commit differ); one of them was made by hand. Nothing was compared.`,
    );
  return { source, sourceFrom: 'provenance' };
}
