// manifest.txt and cloudinary.txt: the lists of files the downloads stage fetches (docs/downloads.md).
// Parsing only; fetching lives in downloads.ts.
import path from 'node:path';
import { ValidationError, messageOf } from '../core/errors.ts';
import { resolveInside } from '../core/names.ts';

export interface ManifestEntry {
  /** The URL that is fetched: the manifest's URL without its `#tag` fragment. */
  url: string;
  /** The version tag written after `#` (`URL#3` → `3`), or '' when there is none. */
  tag: string;
  /** The destination below the downloads folder, normalised to `a/b/c.ext` (forward slashes). */
  dest: string;
  /** Where the entry was written, for messages: `manifest.txt:12`. */
  where: string;
}

export interface ParseOptions {
  /** Name used in messages (`manifest.txt`, `stdin`, `cloudinary.txt`). */
  source?: string;
  /** How many problems to report before giving up (default 20). */
  maxProblems?: number;
}

/** Folder and file names the downloads stage keeps for itself; a DEST may not use them. */
const RESERVED_NAMES = ['old', '.downloads.json', '.downloads.lock', '.downloads.partial'];

const MAX_LINE = 8192;

/**
 * Parse manifest.txt: one `URL DEST` a line. The first run of blanks ends the URL; the rest of
 * the line is DEST and may hold spaces. Blank lines and lines starting with `#` are comments.
 * Every problem is collected and reported together, each with its line number.
 */
export function parseManifest(text: string, options: ParseOptions = {}): ManifestEntry[] {
  const source = options.source ?? 'manifest.txt';
  const problems: string[] = [];
  const entries: ManifestEntry[] = [];
  eachLine(text, (line, n) => {
    const where = `${source}:${n}`;
    try {
      const entry = parseManifestLine(line, where);
      if (entry) entries.push(entry);
    } catch (error) {
      problems.push(messageOf(error));
    }
  });
  throwProblems(problems, options.maxProblems);
  return entries;
}

/** One manifest line → an entry, or undefined for a blank line or comment. Throws ValidationError. */
export function parseManifestLine(line: string, where: string): ManifestEntry | undefined {
  const text = cleanLine(line, where);
  if (text === undefined) return undefined;
  const [rawUrl, rawDest] = splitFirst(text);
  if (!rawDest)
    throw new ValidationError(
      `${where}: "${shorten(rawUrl)}" has no destination; write "URL DEST" (for example "https://example.com/logo.png img/logo.png").`,
    );
  const { url, tag } = parseUrl(rawUrl, where);
  return { url, tag, dest: normaliseDest(rawDest, where), where };
}

/**
 * Parse cloudinary.txt: the first line is `cloud NAME`; each later line is
 * `PUBLIC_ID[#tag] TRANSFORMATION DEST` (TRANSFORMATION `-` means none), expanded to
 * `https://res.cloudinary.com/NAME/image/upload/TRANSFORMATION/PUBLIC_ID`.
 */
export function parseCloudinary(text: string, options: ParseOptions = {}): ManifestEntry[] {
  const source = options.source ?? 'cloudinary.txt';
  const problems: string[] = [];
  const entries: ManifestEntry[] = [];
  let cloud: string | undefined;
  eachLine(text, (line, n) => {
    const where = `${source}:${n}`;
    try {
      const clean = cleanLine(line, where);
      if (clean === undefined) return;
      if (cloud === undefined) {
        const m = /^cloud[ \t]+([A-Za-z0-9_-]+)$/.exec(clean);
        if (!m)
          throw new ValidationError(
            `${where}: the first line must be "cloud NAME" (your Cloudinary cloud name, letters, digits, "_" and "-").`,
          );
        cloud = m[1];
        return;
      }
      entries.push(parseCloudinaryLine(clean, cloud, where));
    } catch (error) {
      problems.push(messageOf(error));
    }
  });
  if (cloud === undefined && problems.length === 0 && text.trim() !== '')
    problems.push(`${source}: the first line must be "cloud NAME".`);
  throwProblems(problems, options.maxProblems);
  return entries;
}

function parseCloudinaryLine(text: string, cloud: string, where: string): ManifestEntry {
  const [idWithTag, rest] = splitFirst(text);
  const [transformation, rawDest] = splitFirst(rest);
  if (!transformation || !rawDest) {
    throw new ValidationError(
      `${where}: write "PUBLIC_ID TRANSFORMATION DEST" (TRANSFORMATION "-" for none), for example "samples/dog w_300,c_fill img/dog.jpg".`,
    );
  }
  const hash = idWithTag.indexOf('#');
  const publicId = hash === -1 ? idWithTag : idWithTag.slice(0, hash);
  const tag = hash === -1 ? '' : idWithTag.slice(hash + 1);
  checkUrlPath(publicId, 'public ID', where);
  if (transformation !== '-') checkUrlPath(transformation, 'transformation', where);
  checkTag(tag, where);
  const encode = (p: string) =>
    p
      .split('/')
      .map((s) => encodeURIComponent(s).replace(/%2C/gi, ','))
      .join('/');
  const middle = transformation === '-' ? '' : `${encode(transformation)}/`;
  const url = `https://res.cloudinary.com/${cloud}/image/upload/${middle}${encode(publicId)}`;
  return { url, tag, dest: normaliseDest(rawDest, where), where };
}

function checkUrlPath(value: string, what: string, where: string): void {
  const bad =
    value === '' ||
    /[?#\\\0-\x1f\x7f]/.test(value) ||
    value.startsWith('/') ||
    value.endsWith('/') ||
    value.split('/').some((s) => s === '' || s === '.' || s === '..');
  if (bad) throw new ValidationError(`${where}: invalid Cloudinary ${what} "${shorten(value)}".`);
}

/**
 * Check a whole list (manifest and cloudinary entries together): the same DEST twice with
 * different URLs is an error naming both lines; the same DEST with the same URL is kept once;
 * a DEST that is also used as a folder by another entry is an error.
 */
export function checkEntries(entries: ManifestEntry[], options: { maxProblems?: number } = {}): ManifestEntry[] {
  const problems: string[] = [];
  const byDest = new Map<string, ManifestEntry>();
  const unique: ManifestEntry[] = [];
  for (const entry of entries) {
    const first = byDest.get(entry.dest);
    if (!first) {
      byDest.set(entry.dest, entry);
      unique.push(entry);
    } else if (first.url !== entry.url || first.tag !== entry.tag) {
      problems.push(
        `${entry.where}: destination "${shorten(entry.dest)}" is already used by ${first.where} with a ` +
          `different URL (${shorten(withTag(first))} vs ${shorten(withTag(entry))}); give one of them another destination.`,
      );
    }
  }
  for (const entry of unique) {
    const parts = entry.dest.split('/');
    for (let i = 1; i < parts.length; i++) {
      const folder = parts.slice(0, i).join('/');
      const clash = byDest.get(folder);
      if (clash)
        problems.push(
          `${entry.where}: "${shorten(entry.dest)}" needs "${shorten(folder)}" as a folder, but ${clash.where} downloads a file there.`,
        );
    }
  }
  throwProblems(problems, options.maxProblems);
  return unique;
}

/** The manifest form of an entry: `URL#tag`. */
export function withTag(entry: { url: string; tag: string }): string {
  return entry.tag ? `${entry.url}#${entry.tag}` : entry.url;
}

function parseUrl(raw: string, where: string): { url: string; tag: string } {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(raw)?.[1]?.toLowerCase();
  if (scheme !== 'http' && scheme !== 'https') {
    const what = scheme ? `"${scheme}:" URLs are not allowed` : 'it is not a URL';
    throw new ValidationError(
      `${where}: "${shorten(raw)}": ${what}; only http:// and https:// URLs can be downloaded.`,
    );
  }
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ValidationError(`${where}: "${shorten(raw)}" is not a valid URL.`);
  }
  if (!parsed.hostname) throw new ValidationError(`${where}: "${shorten(raw)}" has no host name.`);
  const hash = raw.indexOf('#');
  const tag = hash === -1 ? '' : raw.slice(hash + 1);
  checkTag(tag, where);
  parsed.hash = '';
  return { url: parsed.href, tag };
}

function checkTag(tag: string, where: string): void {
  if (tag.length > 100 || /[\0-\x1f\x7f]/.test(tag))
    throw new ValidationError(`${where}: the version tag "#${shorten(tag)}" is too long or holds control characters.`);
}

function normaliseDest(raw: string, where: string): string {
  if (raw.endsWith('/') || raw.endsWith('\\'))
    throw new ValidationError(`${where}: destination "${shorten(raw)}" is a folder; add the file name.`);
  if (/[\0-\x1f\x7f]/.test(raw))
    throw new ValidationError(`${where}: destination "${shorten(raw)}" holds control characters.`);
  const root = path.resolve('/downloads-root');
  let full: string;
  try {
    full = resolveInside(root, raw, 'destination');
  } catch (error) {
    throw new ValidationError(
      `${where}: ${messageOf(error).replace(/ it leaves .*$/, ' it leaves the downloads folder.')}`,
    );
  }
  const dest = path.relative(root, full).split(path.sep).join('/');
  const first = dest.split('/')[0];
  if (RESERVED_NAMES.includes(first))
    throw new ValidationError(
      `${where}: destination "${shorten(raw)}" uses "${first}", which the downloads stage keeps for itself; choose another name.`,
    );
  return dest;
}

function cleanLine(line: string, where: string): string | undefined {
  if (line.length > MAX_LINE) throw new ValidationError(`${where}: the line is longer than ${MAX_LINE} characters.`);
  // Trailing blanks (and the \r of CRLF files) are never part of a destination: they are invisible.
  const text = line.replace(/^[ \t]+/, '').replace(/[ \t\r]+$/, '');
  if (text === '' || text.startsWith('#')) return undefined;
  return text;
}

function splitFirst(text: string): [string, string] {
  const m = /[ \t]+/.exec(text);
  if (!m) return [text, ''];
  return [text.slice(0, m.index), text.slice(m.index + m[0].length)];
}

function eachLine(text: string, fn: (line: string, n: number) => void): void {
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  lines.forEach((line, i) => fn(line, i + 1));
}

function throwProblems(problems: string[], max = 20): void {
  if (problems.length === 0) return;
  const shown = problems.slice(0, max);
  const more = problems.length > max ? `\n(and ${problems.length - max} more problems)` : '';
  throw new ValidationError(shown.join('\n') + more);
}

function shorten(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
