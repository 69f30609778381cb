// Status badges (docs/hook-server.md, `GET /badge/OWNER/NAME.svg[?branch=B]`): the state of a
// repo's branch from its jobs, a shields-style flat SVG, and the HTTP answer with a strong ETag.
// The label is fixed ("build"), so a repo that is not configured and one that never built answer
// the same bytes: a badge is no oracle for which repositories exist.
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { escapeMarkup } from '../core/escape.ts';

export const BADGE_STATES = ['passing', 'failing', 'running', 'unknown'] as const;
export type BadgeState = (typeof BADGE_STATES)[number];

/** What a badge needs of a job (lib/jobs/local/journal.ts's Job has these fields). */
export interface BadgeJob {
  repo: string;
  kind: string;
  branch: string | null;
  state: string;
  seq: number;
}

const COLOURS: Record<BadgeState, string> = {
  passing: '#4c1',
  failing: '#e05d44',
  running: '#dfb317',
  unknown: '#9f9f9f',
};
const LABEL = 'build';

/**
 * The newest build of the branch decides: queued or running → running, succeeded → passing,
 * failed → failing. Superseded and interrupted jobs say nothing about the code, so the one before
 * them decides; no job at all → unknown.
 */
export function badgeState(jobs: Iterable<BadgeJob>, repo: string, branch: string): BadgeState {
  let newest: BadgeJob | undefined;
  for (const job of jobs) {
    if (job.repo !== repo || job.kind !== 'build' || job.branch !== branch) continue;
    if (job.state === 'superseded' || job.state === 'interrupted') continue;
    if (!newest || job.seq > newest.seq) newest = job;
  }
  switch (newest?.state) {
    case 'queued':
    case 'running':
      return 'running';
    case 'succeeded':
      return 'passing';
    case 'failed':
      return 'failing';
    default:
      return 'unknown';
  }
}

// Verdana 11px advance widths (tenths of a pixel), the font shields.io measures with.
const WIDTHS: Record<string, number> = {
  a: 66,
  b: 69,
  c: 57,
  d: 69,
  e: 66,
  f: 39,
  g: 69,
  h: 70,
  i: 30,
  j: 38,
  k: 65,
  l: 30,
  m: 107,
  n: 70,
  o: 67,
  p: 69,
  q: 69,
  r: 47,
  s: 57,
  t: 43,
  u: 70,
  v: 65,
  w: 90,
  x: 65,
  y: 65,
  z: 58,
  ' ': 35,
};

function textWidth(text: string): number {
  return Math.round([...text].reduce((sum, c) => sum + (WIDTHS[c.toLowerCase()] ?? 75), 0) / 10);
}

export function renderBadge(state: BadgeState, label = LABEL): string {
  const left = textWidth(label) + 10;
  const right = textWidth(state) + 10;
  const width = left + right;
  const l = escapeMarkup(label);
  const s = escapeMarkup(state);
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="20" role="img" aria-label="${l}: ${s}">` +
    `<title>${l}: ${s}</title>` +
    `<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop ` +
    `offset="1" stop-opacity=".1"/></linearGradient>` +
    `<clipPath id="r"><rect width="${width}" height="20" rx="3" fill="#fff"/></clipPath>` +
    `<g clip-path="url(#r)"><rect width="${left}" height="20" fill="#555"/><rect x="${left}" ` +
    `width="${right}" height="20" fill="${COLOURS[state]}"/><rect width="${width}" height="20" fill="url(#s)"/></g>` +
    `<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">` +
    `<text x="${left / 2}" y="15" fill="#010101" fill-opacity=".3">${l}</text><text x="${left / 2}" y="14">${l}</text>` +
    `<text x="${left + right / 2}" y="15" fill="#010101" fill-opacity=".3">${s}</text><text x="${left + right / 2}" y="14">${s}</text>` +
    `</g></svg>\n`
  );
}

/** `/badge/OWNER/NAME.svg` → `OWNER/NAME` (GitLab subgroups too); undefined when it is not a badge path. */
export function badgeRepo(route: string): string | undefined {
  const m = /^\/badge\/(.+)\.svg$/.exec(route);
  if (!m) return undefined;
  try {
    return decodeURIComponent(m[1]);
  } catch {
    return '';
  }
}

/** A strong ETag over the bytes. */
export function entityTag(body: string | Buffer): string {
  return `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
}

/** If-None-Match compares weakly (RFC 9110 13.1.2): `W/` is ignored, `*` matches anything. */
export function matchesEtag(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false;
  return ifNoneMatch
    .split(',')
    .map((t) => t.trim().replace(/^W\//, ''))
    .some((t) => t === '*' || t === etag);
}

export interface BadgeRequest {
  /** The jobs to judge from (the journal's). */
  jobs: Iterable<BadgeJob>;
  /** Configured repos and their default branch. */
  branchOf: (repo: string) => string | undefined;
}

/** Answer a `GET|HEAD /badge/…svg`: 200 with the SVG, or 304 when the client has these bytes. */
export function sendBadge(req: IncomingMessage, res: ServerResponse, url: URL, { jobs, branchOf }: BadgeRequest): void {
  const repo = badgeRepo(url.pathname) ?? '';
  const defaultBranch = branchOf(repo);
  const branch = url.searchParams.get('branch') ?? defaultBranch;
  const state = defaultBranch === undefined || !branch ? 'unknown' : badgeState(jobs, repo, branch);
  const body = renderBadge(state);
  const etag = entityTag(body);
  const headers = {
    'Content-Type': 'image/svg+xml; charset=utf-8',
    'Cache-Control': 'no-cache',
    ETag: etag,
    'X-Content-Type-Options': 'nosniff',
    'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'",
  };
  if (matchesEtag(req.headers['if-none-match'], etag)) {
    res.writeHead(304, headers);
    return void res.end();
  }
  res.writeHead(200, { ...headers, 'Content-Length': Buffer.byteLength(body) });
  res.end(req.method === 'HEAD' ? undefined : body);
}
