// `release diff` for a terminal: the two releases, the commits, the files and the dependencies,
// one line each; every text that came from a tarball, a lock, git or the ledger shown escaped.
import type { ChangedPackage, LockedPackage } from './deps.ts';
import type { FileChange, ReleaseFile } from './files.ts';
import type { DiffSide, ReleaseDiff } from './diff.ts';
import { shownEscaped } from '../../core/escape.ts';
import { counted } from '../dest/history.ts';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 1536 → "1.5 KiB"; under 1 KiB in bytes. */
export function bytesText(n: number): string {
  let value = Math.abs(n);
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  const shown = unit === 0 ? String(value) : value.toFixed(1);
  return `${n < 0 ? '-' : ''}${shown} ${UNITS[unit]}`;
}

/** A size change with its sign: "+200 B", "-1.5 KiB", "±0 B". */
export function changeText(n: number): string {
  return n > 0 ? `+${bytesText(n)}` : n < 0 ? bytesText(n) : '±0 B';
}

const short = (commit: string | null) => commit?.slice(0, 12) ?? '';

function sideLine(label: string, s: DiffSide, files: number, bytes: number): string {
  const source = [s.repo, s.ref, short(s.commit)].filter(Boolean).join(' ');
  const flags = [
    s.revoked ? 'key revoked' : '',
    s.sourceFrom === 'ledger' ? 'source from the ledger: provenance file gone' : '',
  ]
    .filter(Boolean)
    .join(', ');
  return (
    `  ${label} ${s.version.padEnd(10)} entry ${String(s.n).padEnd(4)} ${s.file}  ` +
    `${counted(files, 'file')}, ${bytesText(bytes)}${source ? `  ${shownEscaped(source)}` : ''}${flags ? `  (${flags})` : ''}`
  );
}

function changeLine(c: FileChange): string {
  const parts: string[] = [];
  if (c.changes.includes('type')) parts.push(`${c.from.type} → ${c.to.type}`);
  if (c.changes.includes('content'))
    parts.push(`${bytesText(c.from.size)} → ${bytesText(c.size)} (${changeText(c.sizeChange)})`);
  if (c.changes.includes('mode')) parts.push(`mode ${c.from.mode} → ${c.to.mode}`);
  if (c.changes.includes('target'))
    parts.push(`${c.type} ${shownEscaped(c.from.target ?? '')} → ${shownEscaped(c.to.target ?? '')}`);
  return `  ~ ${shownEscaped(c.path)}  ${parts.join(', ')}`;
}

const fileLine = (sign: string, f: ReleaseFile) =>
  `  ${sign} ${shownEscaped(f.path)}  ${f.type === 'file' ? bytesText(f.size) : `${f.type}${f.target !== null ? ` → ${shownEscaped(f.target)}` : ''}`}`;

/** `node_modules/a/node_modules/b` → `a > b`: where a nested package sits. */
const where = (p: LockedPackage | ChangedPackage) =>
  shownEscaped(p.path.replace(/^node_modules\//, '').replaceAll('/node_modules/', ' > '));

function dependencyLines(diff: ReleaseDiff): string[] {
  const d = diff.dependencies;
  if (!d) return [`Dependencies: ${diff.dependenciesNote}`];
  const lines = [
    `Dependencies (package-lock.json): ${d.added.length} added, ${d.removed.length} removed, ${d.changed.length} changed`,
  ];
  for (const p of d.added) lines.push(`  + ${where(p)} ${shownEscaped(p.version ?? '?')}`);
  for (const p of d.removed) lines.push(`  - ${where(p)} ${shownEscaped(p.version ?? '?')}`);
  for (const p of d.changed)
    lines.push(
      p.integrityChanged
        ? `  ~ ${where(p)} ${shownEscaped(p.to ?? '?')} (same version, another integrity)`
        : `  ~ ${where(p)} ${shownEscaped(p.from ?? '?')} → ${shownEscaped(p.to ?? '?')}`,
    );
  return lines;
}

function commitLines(diff: ReleaseDiff): string[] {
  const range = `${short(diff.from.commit)}..${short(diff.to.commit)}`;
  if (!diff.commits) {
    const known = diff.from.commit && diff.to.commit ? ` ${range} (${shownEscaped(diff.to.repo ?? 'the source')})` : '';
    return [`Commits${known}: not listed; ${shownEscaped(diff.commitsNote ?? '')}`];
  }
  const lines = [`Commits ${range}: ${diff.commitCount ?? diff.commits.length}`];
  for (const c of diff.commits)
    lines.push(`  ${short(c.commit)} ${shownEscaped(c.subject)}  (${shownEscaped(c.author)})`);
  if (diff.commitsNote) lines.push(`  ${shownEscaped(diff.commitsNote)}`);
  return lines;
}

/** The diff as lines for a terminal. */
export function formatDiff(diff: ReleaseDiff): string {
  const f = diff.files;
  const { from: before, to: after } = f.total;
  const lines = [
    `${diff.app} ${diff.from.version} → ${diff.to.version} at ${shownEscaped(diff.dest)} (ledger signed by ${diff.primary})`,
    sideLine('V1', diff.from, before.files, before.bytes),
    sideLine('V2', diff.to, after.files, after.bytes),
    '',
    ...commitLines(diff),
    '',
    `Files: ${f.added.length} added, ${f.removed.length} removed, ${f.changed.length} changed`,
    ...f.added.map((x) => fileLine('+', x)),
    ...f.removed.map((x) => fileLine('-', x)),
    ...f.changed.map(changeLine),
    `  total: ${counted(before.files, 'file')}, ${bytesText(before.bytes)} → ` +
      `${counted(after.files, 'file')}, ${bytesText(after.bytes)} (${changeText(after.bytes - before.bytes)})`,
    '',
    ...dependencyLines(diff),
  ];
  return `${lines.join('\n')}\n`;
}
