// A webhook `secret:` (top level or per repo): one secret, or a list during a change-over — the
// current one first, then old ones, each `env:NAME`, `file:PATH` or a literal, an old one with an
// optional `until: DATE` after which it is refused (docs/security.md "When a secret leaks").
import { configError, valueAt, type ConfigDoc, type KeyPath } from '../core/yaml-config.ts';

/** One listed secret, unresolved; `until` in ms since the epoch. */
export interface SecretRef {
  ref: string;
  until?: number;
}

const MAX_SECRETS = 4;

/** The `secret:` at keyPath as a list (undefined when absent). */
export function parseSecretList(doc: ConfigDoc, keyPath: KeyPath): SecretRef[] | undefined {
  const value = valueAt(doc.data, keyPath);
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return [{ ref: value }];
  if (!Array.isArray(value))
    throw configError(doc, keyPath, 'must be a secret (env:NAME, file:PATH) or a list of them, the current one first.');
  if (value.length === 0 || value.length > MAX_SECRETS)
    throw configError(doc, keyPath, `must list 1 to ${MAX_SECRETS} secrets, the current one first.`);
  return value.map((entry, i) => parseEntry(doc, [...keyPath, i], entry, i === 0));
}

function parseEntry(doc: ConfigDoc, keyPath: KeyPath, entry: unknown, current: boolean): SecretRef {
  if (typeof entry === 'string' && entry !== '') return { ref: entry };
  const record = entry as Record<string, unknown> | null;
  if (!record || typeof record !== 'object' || Array.isArray(record) || typeof record.secret !== 'string')
    throw configError(doc, keyPath, 'must be a secret, or {secret: SECRET, until: DATE} for an old one.');
  const unknown = Object.keys(record).find((key) => key !== 'secret' && key !== 'until');
  if (unknown) throw configError(doc, [...keyPath, unknown], 'unknown key; expected one of: secret, until.');
  if (record.until === undefined) return { ref: record.secret };
  if (current)
    throw configError(
      doc,
      [...keyPath, 'until'],
      'the first secret is the current one and has no end; list the new one first.',
    );
  // YAML reads an unquoted date as a Date; a quoted one is a string.
  const until = record.until instanceof Date ? record.until.getTime() : Date.parse(String(record.until));
  if (!Number.isFinite(until))
    throw configError(doc, [...keyPath, 'until'], 'must be a date, e.g. 2026-12-31 or 2026-12-31T18:00:00Z.');
  return { ref: record.secret, until };
}

/** A resolved secret and when it stops being taken (ms since the epoch, undefined: never). */
export interface ListedSecret {
  value: string;
  until?: number;
}
