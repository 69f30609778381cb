// The update server's VERSION file (docs/design.md "File formats"): parsed strictly, each key at
// most once, APP-PLATFORM-VERSION.tar.gz bound to APP and PLATFORM; SEQ and ROLLOUT read for the
// host's checks; hexadecimal versions compared.
// The whole story: docs/internals.md.
import { ValidationError } from '../../core/errors.ts';
import { nameProblem, validateName } from '../../core/names.ts';

/** VERSION is a few lines; anything bigger is refused while it is being read. */
export const MAX_VERSION_FILE_BYTES = 64 * 1024;

/** The largest SEQ a VERSION can carry (15 digits): no host ever accepted one above it. */
export const MAX_SEQ = 999_999_999_999_999;

export interface VersionInfo {
  version: string;
  file: string;
  release?: string;
  sha256?: string;
  size?: number;
  expires?: Date;
  app?: string;
  platform?: string;
  /** Grows with every VERSION the publisher signs (1, 2, …). */
  seq?: number;
  /** Percent of hosts that take this version now, 0 < P <= 100 (absent = 100). */
  rollout?: number;
  /** The release's manifest (MANIFEST FILE SHA256), for delta updates. */
  manifest?: { file: string; sha256: string };
  /** Patches to this release from older ones (PATCH FROM FILE SHA256 SIZE), one line each. */
  patches?: PatchLine[];
}

/** A patch VERSION names: from which version, its file at DEST, its sha256 and size. */
export interface PatchLine {
  from: string;
  file: string;
  sha256: string;
  size: number;
}

const KNOWN_KEYS = new Set([
  'CURRENT',
  'RELEASE',
  'SHA256',
  'SIZE',
  'EXPIRES',
  'APP',
  'PLATFORM',
  'SEQ',
  'ROLLOUT',
  'MANIFEST',
]);

/** A file name VERSION gives (CURRENT, MANIFEST, PATCH), checked as a name. */
function checkedFileName(file: string, where: string): string {
  const problem = nameProblem(file);
  if (problem)
    throw new ValidationError(`Invalid file name ${JSON.stringify(file.slice(0, 70))} in ${where}: it ${problem}.`);
  return file;
}

const SHA256_HEX = /^[0-9a-f]{64}$/i;

/** `MANIFEST FILE SHA256`. */
function parseManifestLine(rest: string[], where: string): { file: string; sha256: string } {
  if (rest.length !== 2 || !SHA256_HEX.test(rest[1]))
    throw new ValidationError(
      `${where}: MANIFEST needs a file name and its sha256 ("MANIFEST app-linux-1.2.manifest HEX").`,
    );
  return { file: checkedFileName(rest[0], where), sha256: rest[1].toLowerCase() };
}

/** `PATCH FROM FILE SHA256 SIZE`. */
function parsePatchLine(rest: string[], where: string): PatchLine {
  if (rest.length !== 4 || !SHA256_HEX.test(rest[2]) || !/^\d{1,15}$/.test(rest[3]))
    throw new ValidationError(`${where}: PATCH needs a version, a file name, its sha256 and its size in bytes.`);
  validateVersion(rest[0], `PATCH version in ${where}`);
  return { from: rest[0], file: checkedFileName(rest[1], where), sha256: rest[2].toLowerCase(), size: Number(rest[3]) };
}

const ROLLOUT_PERCENT = /^\d{1,3}(\.\d{1,2})?$/;

/** Why `text` is not a rollout percent (0 < P <= 100, at most 2 fraction digits), or undefined when it is. */
export function rolloutProblem(text: string): string | undefined {
  if (!ROLLOUT_PERCENT.test(text)) return 'must be a percent such as 10 or 0.5 (at most 2 fraction digits)';
  const value = Number(text);
  if (value <= 0) return 'must be above 0 (a VERSION no host takes is not a release)';
  if (value > 100) return 'must be at most 100';
  return undefined;
}

/** A rollout percent from text ("10", "0.5", "10%"), or a ValidationError naming `where`. */
export function parseRolloutPercent(text: string, where = 'ROLLOUT'): number {
  const bare = text.trim().replace(/%$/, '');
  const problem = rolloutProblem(bare);
  if (problem) throw new ValidationError(`Invalid ${where} ${JSON.stringify(text.slice(0, 30))}: it ${problem}.`);
  return Number(bare);
}

const HEX_VERSION = /^[0-9a-f]+(\.[0-9a-f]+)*$/i;

/** Why `version` is not a dot-separated hexadecimal version, or undefined when it is. */
export function versionProblem(version: string): string | undefined {
  if (version.length === 0) return 'is empty';
  if (version.length > 64) return 'is longer than 64 characters';
  if (!HEX_VERSION.test(version)) return 'must be dot-separated hexadecimal segments such as 1.23.42b';
  return undefined;
}

export function validateVersion(version: string, where = 'version'): string {
  const problem = versionProblem(version);
  if (problem) throw new ValidationError(`Invalid ${where} ${JSON.stringify(version.slice(0, 70))}: it ${problem}.`);
  return version;
}

/**
 * Compare two versions segment by segment as hexadecimal numbers: -1, 0 or 1.
 * A missing segment counts as 0, so 1.2 equals 1.2.0. Leading zeros do not matter.
 */
export function compareVersions(a: string, b: string): number {
  validateVersion(a);
  validateVersion(b);
  const pa = a.split('.');
  const pb = b.split('.');
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = BigInt(`0x${pa[i] ?? '0'}`);
    const y = BigInt(`0x${pb[i] ?? '0'}`);
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

const LEADING_ZERO = /(?:^|\.)0/;

/**
 * A valid version's form with what compareVersions ignores taken out (leading zeros of a part,
 * letter case, trailing `.0` parts): two versions compare equal exactly when these are equal.
 * For comparing many versions with one (a ledger's thousands of releases) without parsing each.
 */
export function versionKey(version: string): string {
  const lower = version.toLowerCase();
  // No part starts with 0: no leading zeros and no trailing `.0` to drop (most versions).
  if (!LEADING_ZERO.test(lower)) return lower;
  const parts = lower.split('.').map((p) => p.replace(/^0+(?=.)/, ''));
  while (parts.length > 1 && parts[parts.length - 1] === '0') parts.pop();
  return parts.join('.');
}

/** Parse VERSION; unknown keys are ignored, every known key is checked. */
export function parseVersionFile(text: string): VersionInfo {
  if (text.length > MAX_VERSION_FILE_BYTES) {
    throw new ValidationError(
      `VERSION is larger than ${MAX_VERSION_FILE_BYTES} bytes; the update server is misconfigured or hostile.`,
    );
  }
  let info: Pick<VersionInfo, 'version' | 'file'> | undefined;
  const extra: Partial<VersionInfo> = {};
  const seen = new Set<string>();
  const lines = text.split(/\r?\n/);
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n].trim();
    if (line === '' || line.startsWith('#')) continue;
    const [key, ...rest] = line.split(/\s+/);
    const where = `VERSION line ${n + 1}`;
    // A repeated key would let a second line quietly override a checked first one.
    if (KNOWN_KEYS.has(key) && seen.has(key)) throw new ValidationError(`${where}: ${key} appears twice.`);
    seen.add(key);
    if (key === 'CURRENT') info = parseCurrentLine(rest, where);
    else readOtherLine(key, rest, where, extra);
  }
  if (!info) throw new ValidationError('VERSION has no CURRENT line; expected "CURRENT VERSION FILE".');
  if ((extra.app === undefined) !== (extra.platform === undefined))
    throw new ValidationError(
      'VERSION has an APP line without a PLATFORM line or the other way round; give both or neither.',
    );
  return { ...info, ...extra } as VersionInfo;
}

/** `CURRENT VERSION FILE`: the version offered and its tarball's name, both checked. */
function parseCurrentLine(rest: string[], where: string): Pick<VersionInfo, 'version' | 'file'> {
  if (rest.length !== 2)
    throw new ValidationError(
      `${where}: CURRENT needs a version and a file name ("CURRENT 1.2.3 app-linux-1.2.3.tar.gz").`,
    );
  const [version, file] = rest;
  validateVersion(version, `version in ${where}`);
  const problem = nameProblem(file);
  if (problem)
    throw new ValidationError(
      `Invalid release file name ${JSON.stringify(file.slice(0, 70))} in ${where}: it ${problem}.`,
    );
  return { version, file };
}

/** A line other than CURRENT, checked, into `extra`; an unknown key is ignored so the format can grow. */
function readOtherLine(key: string, rest: string[], where: string, extra: Partial<VersionInfo>): void {
  switch (key) {
    case 'RELEASE':
      extra.release = rest.join(' ');
      break;
    case 'SHA256':
      if (rest.length !== 1 || !/^[0-9a-f]{64}$/i.test(rest[0]))
        throw new ValidationError(`${where}: SHA256 must be 64 hexadecimal digits.`);
      extra.sha256 = rest[0].toLowerCase();
      break;
    case 'SIZE':
      if (rest.length !== 1 || !/^\d{1,15}$/.test(rest[0]))
        throw new ValidationError(`${where}: SIZE must be a number of bytes.`);
      extra.size = Number(rest[0]);
      break;
    case 'EXPIRES': {
      const date = new Date(rest.join(' '));
      if (rest.length === 0 || Number.isNaN(date.getTime()))
        throw new ValidationError(`${where}: EXPIRES must be an ISO-8601 date.`);
      extra.expires = date;
      break;
    }
    case 'APP':
    case 'PLATFORM':
      if (key === 'APP') extra.app = parseNameLine(key, rest, where);
      else extra.platform = parseNameLine(key, rest, where);
      break;
    case 'SEQ':
      if (rest.length !== 1 || !/^[1-9]\d{0,14}$/.test(rest[0]))
        throw new ValidationError(`${where}: SEQ must be a whole number from 1 to 15 digits ("SEQ 1042").`);
      extra.seq = Number(rest[0]);
      break;
    case 'ROLLOUT': {
      const problem = rest.length === 1 ? rolloutProblem(rest[0]) : 'needs exactly one number';
      if (problem) throw new ValidationError(`${where}: ROLLOUT ${problem} ("ROLLOUT 10").`);
      extra.rollout = Number(rest[0]);
      break;
    }
    case 'MANIFEST':
      extra.manifest = parseManifestLine(rest, where);
      break;
    case 'PATCH':
      addPatchLine(extra, parsePatchLine(rest, where), where);
      break;
    default:
      break; // unknown keys are ignored so the format can grow
  }
}

/** `APP NAME` or `PLATFORM NAME`: exactly one name, checked. */
function parseNameLine(key: 'APP' | 'PLATFORM', rest: string[], where: string): string {
  if (rest.length !== 1)
    throw new ValidationError(
      `${where}: ${key} needs exactly one name ("${key} ${key === 'APP' ? 'my-app' : 'gnu-linux'}").`,
    );
  validateName(rest[0], `${key} in ${where}`);
  return rest[0];
}

/** One more PATCH line; a second patch from the same version is refused. */
function addPatchLine(extra: Partial<VersionInfo>, patch: PatchLine, where: string): void {
  if (extra.patches?.some((p) => compareVersions(p.from, patch.from) === 0))
    throw new ValidationError(`${where}: a second PATCH from ${patch.from}.`);
  (extra.patches ??= []).push(patch);
}

export function formatVersionFile(info: VersionInfo): string {
  const lines = [`CURRENT ${info.version} ${info.file}`];
  if (info.release) lines.push(`RELEASE ${info.release}`);
  if (info.sha256) lines.push(`SHA256 ${info.sha256}`);
  if (info.size !== undefined) lines.push(`SIZE ${info.size}`);
  if (info.expires) lines.push(`EXPIRES ${info.expires.toISOString()}`);
  if (info.app) lines.push(`APP ${info.app}`);
  if (info.platform) lines.push(`PLATFORM ${info.platform}`);
  if (info.seq !== undefined) lines.push(`SEQ ${info.seq}`);
  if (info.rollout !== undefined) {
    // Never write what the parser (and every host) would refuse.
    const problem = rolloutProblem(String(info.rollout));
    if (problem) throw new ValidationError(`ROLLOUT ${info.rollout} ${problem}; refusing to write such a VERSION.`);
    lines.push(`ROLLOUT ${info.rollout}`);
  }
  if (info.manifest) lines.push(`MANIFEST ${info.manifest.file} ${info.manifest.sha256}`);
  for (const p of info.patches ?? []) lines.push(`PATCH ${p.from} ${p.file} ${p.sha256} ${p.size}`);
  return `${lines.join('\n')}\n`;
}
