// `release promote`'s source side (docs/environments.md): which release of APP at the source DEST is
// meant, the signed record of its bytes (the ledger's entry, else the source's VERSION), and whether
// it is good there: the current release now or once, never halted or rolled back.
import { UsageError, ValidationError } from '../../core/errors.ts';
import { nameProblem } from '../../core/names.ts';
import { badVersions, type LedgerEntry } from '../format/ledger.ts';
import { manifestFileName } from '../format/manifest.ts';
import { versionKey, type VersionInfo } from '../format/version-file.ts';

/** The release to promote as the source holds it, and the signed digests its files must have. */
export interface SourceRelease {
  file: string;
  platform: string;
  /** The version as the source spells it (1.1 and 1.1.0 are one version). */
  version: string;
  /** The tarball's sha256, from a signed record: the ledger entry, else VERSION. */
  sha256: string;
  /** The newest publish or promote entry of the release at the source, if the ledger has one. */
  record?: LedgerEntry;
  manifest?: { file: string; sha256: string };
  provenance?: { file: string; sha256: string };
  codename?: string;
  /** Why the release is not good at the source (the rule `--force` overrides), or undefined. */
  notGood?: string;
}

const ENTERED = new Set(['publish', 'promote']);
/** Entries that signed a VERSION naming their version: it was the current release then. */
const MADE_CURRENT = new Set(['publish', 'promote', 'rollout', 'rollback']);

/** The tarballs at the source named APP-PLATFORM-VERSION.tar.gz for `version`, by platform. */
export function tarballsOf(names: string[], app: string, version: string): Map<string, string> {
  const key = versionKey(version);
  const found = new Map<string, string>();
  for (const name of names) {
    const m = /^(.+)-([^-]+)\.tar\.gz$/.exec(name);
    if (!m || !m[1].startsWith(`${app}-`)) continue;
    const platform = m[1].slice(app.length + 1);
    if (platform && !nameProblem(platform) && !nameProblem(m[2]) && versionKey(m[2]) === key) found.set(platform, name);
  }
  return found;
}

/** Which of `found` is meant: `--platform`, else the source VERSION's platform, else the only one. */
function chosenPlatform(
  found: Map<string, string>,
  { platform, current, app, version, where }: SourceFacts,
): string | undefined {
  if (platform !== undefined) return found.has(platform) ? platform : undefined;
  if (current?.platform && found.has(current.platform)) return current.platform;
  if (found.size > 1)
    throw new UsageError(
      `${where} holds ${app} ${version} for several platforms (${[...found.keys()].join(', ')}); say which with ` +
        `--platform. Nothing was written.`,
    );
  return found.keys().next().value;
}

export interface SourceFacts {
  app: string;
  version: string;
  where: string;
  platform?: string;
  /** The source's VERSION, signature checked (undefined when there is none). */
  current?: VersionInfo;
  entries: LedgerEntry[];
  /** The files directly at the source. */
  names: string[];
}

/**
 * The release at the source and its signed record. Throws ValidationError (exit 2, nothing written)
 * when it was never published there, belongs to another app, or has no signed record of its bytes.
 */
export function sourceRelease(facts: SourceFacts): SourceRelease {
  const { app, version, where, current, entries, names } = facts;
  const key = versionKey(version);
  const same = (e: { app?: string; version: string | null }) => e.version !== null && versionKey(e.version) === key;
  const found = tarballsOf(names, app, version);
  const platform = chosenPlatform(found, facts);
  if (!platform) {
    const other =
      entries.find((e) => ENTERED.has(e.action) && e.app !== app && same(e))?.app ??
      (current && current.app !== app && same(current) ? current.app : undefined);
    if (other)
      throw new ValidationError(
        `${version} at ${where} is a release of ${other}, not of ${app}: refusing to promote another app's ` +
          `version. Nothing was written.`,
      );
    throw new ValidationError(
      `${app} ${version}${facts.platform ? ` for ${facts.platform}` : ''} was never published at ${where}: ` +
        `its tarball is not there${entries.some((e) => e.app === app && same(e)) ? ' (pruned since)' : ''}. ` +
        `Only a release published at the source can be promoted. Nothing was written.`,
    );
  }
  const file = found.get(platform)!;
  const spelled = file.slice(`${app}-${platform}-`.length, -'.tar.gz'.length);
  const record = entries.findLast((e) => ENTERED.has(e.action) && e.app === app && same(e));
  const named = current && (current.app ?? app) === app && current.file === file ? current : undefined;
  const sha256 = record?.sha256 ?? named?.sha256;
  if (!sha256)
    throw new ValidationError(
      `${file} at ${where} has no signed record of its sha256 (no ledger entry, and VERSION does not name it): ` +
        `its bytes cannot be checked. Publish it there with \`release publish\`. Nothing was written.`,
    );
  const manifestSha = record?.manifest_sha256 ?? named?.manifest?.sha256;
  const base = file.slice(0, -'.tar.gz'.length);
  return {
    file,
    platform,
    version: spelled,
    sha256,
    record,
    manifest: manifestSha ? { file: manifestFileName(file), sha256: manifestSha } : undefined,
    provenance: record?.provenance_sha256
      ? { file: `${base}.intoto.jsonl`, sha256: record.provenance_sha256 }
      : undefined,
    codename: named?.release ?? (record?.action === 'publish' ? (record.note ?? undefined) : undefined),
    notGood: notGoodAt(facts, same),
  };
}

/**
 * Why the release is not good at the source, without a fleet: halted or rolled back there (and not
 * published again since), or never the current release (no entry made it current, VERSION does not
 * name it). Undefined when it is good.
 */
function notGoodAt(
  { app, version, where, current, entries }: SourceFacts,
  same: (e: { version: string | null }) => boolean,
): string | undefined {
  const mine = entries.filter((e) => e.app === app);
  if ([...badVersions(mine)].some((v) => same({ version: v }))) {
    const mark = mine.findLast(
      (e) =>
        (e.action === 'halt' && same(e)) ||
        (e.action === 'rollback' && e.from !== undefined && same({ version: e.from })),
    );
    return (
      `${app} ${version} was ${mark?.action === 'halt' ? 'halted' : 'rolled back'} at ${where}` +
      `${mark ? ` (ledger entry ${mark.n})` : ''}: it is not good there`
    );
  }
  const wasCurrent =
    mine.some((e) => MADE_CURRENT.has(e.action) && e.version_sha256 !== null && same(e)) ||
    (current !== undefined && (current.app ?? app) === app && same(current));
  if (!wasCurrent) return `${app} ${version} is not and never was the current release at ${where}`;
  return undefined;
}
