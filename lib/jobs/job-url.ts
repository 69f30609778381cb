// Where a job's page lives: `GET /jobs/ID` (HTML to a browser, JSON to the read API), under
// public_url when hook-server is served behind a proxy; commit statuses and notifications link here.
// The whole story: docs/internals.md.

/** The job page under `public_url:` (no trailing slash, as lib/config/shipkit-yml.ts keeps it). */
export function jobPageUrl(publicUrl: string, id: string): string {
  return `${publicUrl.replace(/\/+$/, '')}${jobPagePath(id)}`;
}

export function jobPagePath(id: string): string {
  return `/jobs/${encodeURIComponent(id)}`;
}

/** The path the pages are served under: `public_url:`'s path without its trailing slash, '' at a host's root. */
export function basePath(publicUrl: string | undefined): string {
  return publicUrl ? new URL(publicUrl).pathname.replace(/\/+$/, '') : '';
}
