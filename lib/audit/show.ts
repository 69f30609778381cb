// An audit entry as a terminal line (`shipkit audit`): every text that came from a request or a
// payload with its control characters written as \u escapes, so a repo or user name cannot move
// the cursor, recolour the terminal or fake a line of its own.
import { shownEscaped } from '../core/escape.ts';
import type { AuditEntry } from './chain.ts';

/** The page shows the trail's text as the terminal does (then escapes it for HTML). */

/** `detail` as `key=value` pairs, each value JSON (strings quoted, newlines as \n). */
export function detailText(detail: AuditEntry['detail']): string {
  if (!detail) return '';
  return Object.entries(detail)
    .map(([key, value]) => `${key}=${JSON.stringify(value)}`)
    .join(' ');
}

export function auditText(e: AuditEntry): string {
  const parts = [
    String(e.n).padStart(5),
    e.at,
    e.action.padEnd(15),
    e.actor,
    `from ${e.from}`,
    ...(e.node ? [`on ${e.node}`] : []),
    ...(e.subject !== null ? [e.subject] : []),
    detailText(e.detail),
  ];
  return shownEscaped(parts.filter(Boolean).join('  '));
}
