// Which Node a repo asks for (`node:` in shipkit.yml, `.nvmrc`, `.node-version`, package.json
// `engines.node`), as a small subset of npm's semver ranges: exact versions, partial versions
// (`22`, `22.9`, `22.x`), `^`, `~`, `>=`, `>`, `<=`, `<`, `=`, spaces for "and", `||` for "or".
// Pure: no files, no network. Anything else is refused with a sentence saying what to write.
import { configError, valueAt, type ConfigDoc, type KeyPath } from '../core/yaml-config.ts';

/** major, minor, patch */
export type Version = [number, number, number];

/** One comparator: the version must be >= `min` (when set) and < `below` (when set). */
interface Bound {
  min?: Version;
  below?: Version;
}

export interface NodeRequest {
  /** As written (trimmed). */
  text: string;
  /** OR of AND-sets of bounds. */
  anyOf: Bound[][];
}

const MAX_REQUEST_LENGTH = 100;
const PART = /^(0|[1-9]\d{0,5})$/;
const WILDCARD = /^[xX*]$/;

export function parseVersion(text: string): Version | undefined {
  const match = /^v?(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})$/.exec(text);
  return match ? [Number(match[1]), Number(match[2]), Number(match[3])] : undefined;
}

export function compareVersions(a: Version, b: Version): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}

export function formatVersion(v: Version): string {
  return v.join('.');
}

/** `22`, `22.9`, `22.9.1`, `22.x`, `v22`: the given numbers (0 to 3), or undefined. */
function parsePartial(text: string): number[] | undefined {
  const parts = text.replace(/^v/, '').split('.');
  if (parts.length > 3 || parts[0] === '') return undefined;
  const numbers: number[] = [];
  let wild = false;
  for (const part of parts) {
    if (WILDCARD.test(part)) {
      wild = true;
      continue;
    }
    if (wild || !PART.test(part)) return undefined;
    numbers.push(Number(part));
  }
  return numbers;
}

/** The lowest version a partial covers, and the first one after it (exclusive). */
function span(numbers: number[]): Bound {
  const [a = 0, b = 0, c = 0] = numbers;
  if (numbers.length === 0) return {};
  const min: Version = [a, b, c];
  const below: Version = numbers.length === 1 ? [a + 1, 0, 0] : numbers.length === 2 ? [a, b + 1, 0] : [a, b, c + 1];
  return { min, below };
}

function parseComparator(token: string): Bound | undefined {
  const match = /^(>=|<=|>|<|=|\^|~)?(.+)$/.exec(token);
  if (!match) return undefined;
  const [, op = '', rest] = match;
  const numbers = parsePartial(rest);
  if (!numbers) return undefined;
  const { min, below } = span(numbers);
  switch (op) {
    case '':
    case '=':
      return { min, below };
    case '>=':
      return { min };
    case '>':
      return numbers.length ? { min: below } : { below: [0, 0, 0] };
    case '<':
      return numbers.length ? { below: min } : { below: [0, 0, 0] };
    case '<=':
      return { below };
    case '^': {
      if (!min) return {};
      const [a, b, c] = min;
      // ^0.9.1 stays below 0.10.0, ^1.2.3 below 2.0.0 (npm's rule: the first non-zero part is fixed).
      const upper: Version =
        a > 0 || numbers.length === 1 ? [a + 1, 0, 0] : b > 0 || numbers.length === 2 ? [0, b + 1, 0] : [0, 0, c + 1];
      return { min, below: upper };
    }
    case '~':
      return min ? { min, below: numbers.length === 1 ? [min[0] + 1, 0, 0] : [min[0], min[1] + 1, 0] } : {};
  }
  return undefined;
}

/**
 * A request, or a sentence saying why `text` is not one (for a message that names its source).
 * `lts/*`, `node`, `latest` and hyphen ranges are refused: they need more than the registry's
 * version list, and a build should say which Node it wants.
 */
export function parseNodeRequest(raw: string): NodeRequest | { problem: string } {
  const text = raw.trim();
  const shown = JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
  if (!text) return { problem: 'is empty' };
  if (text.length > MAX_REQUEST_LENGTH) return { problem: `is longer than ${MAX_REQUEST_LENGTH} characters` };
  if (/^(lts\/|node$|latest$|stable$|current$|system$|iojs)/i.test(text)) {
    return {
      problem: `is ${shown}, an alias shipkit does not resolve; give a version number such as 22, 22.9 or 22.9.0`,
    };
  }
  if (!/^[0-9vxX*.^~<>=| ]+$/.test(text)) {
    return {
      problem: `is ${shown}, which is not a Node version; give a version such as 22, 22.9 or 22.9.0, or a range such as ^22 or >=20`,
    };
  }
  const anyOf: Bound[][] = [];
  for (const alternative of text.split('||')) {
    // `>= 20` is written with a space by some; join an operator with its version.
    const tokens = alternative
      .trim()
      .replace(/(>=|<=|>|<|=|\^|~)\s+/g, '$1')
      .split(/\s+/)
      .filter(Boolean);
    if (!tokens.length) return { problem: `is ${shown}: an empty alternative around ||` };
    const bounds: Bound[] = [];
    for (const token of tokens) {
      const bound = parseComparator(token);
      if (!bound)
        return {
          problem: `is ${shown}: ${JSON.stringify(token)} is not a version or a comparison such as >=20 or ^22.1`,
        };
      bounds.push(bound);
    }
    anyOf.push(bounds);
  }
  return { text, anyOf };
}

export function satisfies(version: Version, request: NodeRequest): boolean {
  return request.anyOf.some((bounds) =>
    bounds.every(
      (b) => (!b.min || compareVersions(version, b.min) >= 0) && (!b.below || compareVersions(version, b.below) < 0),
    ),
  );
}

/** The highest of `versions` (x.y.z strings; others ignored) that satisfies the request. */
export function highestSatisfying(versions: Iterable<string>, request: NodeRequest): string | undefined {
  let best: Version | undefined;
  for (const text of versions) {
    const v = parseVersion(text);
    if (v && satisfies(v, request) && (!best || compareVersions(v, best) > 0)) best = v;
  }
  return best && formatVersion(best);
}

export function highestVersion(versions: Iterable<string>): string | undefined {
  return highestSatisfying(versions, { text: '*', anyOf: [[{}]] });
}

/** `node:` of a repo in shipkit.yml, checked at load: a ConfigError naming FILE:LINE when it is no version. */
export function parseNodeConfig(doc: ConfigDoc, repoKeyPath: KeyPath): NodeRequest | undefined {
  const keyPath = [...repoKeyPath, 'node'];
  const value = valueAt(doc.data, keyPath);
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'number') {
    // YAML reads 22.10 as the number 22.1: only a whole number is unambiguous unquoted.
    if (!Number.isInteger(value))
      throw configError(
        doc,
        keyPath,
        `is the number ${value}; write a version with a dot in quotes, such as node: "${value}" (YAML reads 22.10 as 22.1).`,
      );
  } else if (typeof value !== 'string') {
    throw configError(doc, keyPath, 'must be a Node version such as 22, "22.9" or "22.9.0", or a range such as "^22".');
  }
  const parsed = parseNodeRequest(String(value));
  if ('problem' in parsed) throw configError(doc, keyPath, `${parsed.problem}.`);
  return parsed;
}
