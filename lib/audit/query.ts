// Which audit entries a reader asked for: `since` an entry number or a time, at most `limit`
// (GET /audit?since=&limit=, `shipkit audit --since`).
import { ValidationError } from '../core/errors.ts';
import type { AuditEntry } from './chain.ts';

export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 10_000;

export type Since = { after: number } | { from: string };

export interface AuditQuery {
  /** Entries after number N, or at and after a time; without it, the newest. */
  since?: Since;
  limit: number;
}

/**
 * `N` (an entry number: the entries after it) or a time: ISO 8601, a date, or a time as the Audit
 * page shows it (`2026-05-01 12:00:00 UTC`).
 */
export function parseSince(input: string): Since {
  const text = input.trim();
  if (/^\d{1,15}$/.test(text)) return { after: Number(text) };
  const shown = /^(\d{4}-\d{2}-\d{2})(?:[T ]([\d:.]+))? ?UTC$/i.exec(text);
  const iso = shown ? `${shown[1]}T${shown[2] ?? '00:00:00'}Z` : text;
  const at = /^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(iso) ? Date.parse(iso) : NaN;
  if (Number.isNaN(at))
    throw new ValidationError(
      `since must be an entry number or a time such as 2026-05-01, 2026-05-01 12:00:00 UTC or ` +
        `2026-05-01T12:00:00Z, not ${JSON.stringify(input.slice(0, 40))}.`,
    );
  return { from: new Date(at).toISOString() };
}

export function parseLimit(text: string | null | undefined, fallback = DEFAULT_LIMIT): number {
  if (text === null || text === undefined || text === '') return fallback;
  if (!/^\d{1,6}$/.test(text) || Number(text) < 1 || Number(text) > MAX_LIMIT)
    throw new ValidationError(`limit must be a whole number from 1 to ${MAX_LIMIT}.`);
  return Number(text);
}

/** `GET /audit`'s query string as an AuditQuery; a ValidationError for a bad one. */
export function auditQueryOf(params: URLSearchParams): AuditQuery {
  const since = params.get('since');
  return { since: since ? parseSince(since) : undefined, limit: parseLimit(params.get('limit')) };
}

export function isAfterSince(entry: AuditEntry, since: Since): boolean {
  return 'after' in since ? entry.n > since.after : Date.parse(entry.at) >= Date.parse(since.from);
}

/** The entries a query asks for, oldest first: the first `limit` after `since`, else the newest `limit`. */
export function selectEntries<T extends { entry: AuditEntry }>(rows: T[], { since, limit }: AuditQuery): T[] {
  if (!since) return rows.slice(-limit);
  return rows.filter((r) => isAfterSince(r.entry, since)).slice(0, limit);
}
