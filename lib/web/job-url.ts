// Where a job's page lives: `GET /jobs/ID` answers HTML to a browser (Accept prefers text/html)
// and JSON to the read API. Commit statuses (target_url) and notifications link here.

/** The job page under `public_url:` (no trailing slash, as lib/compile/config.ts keeps it). */
export function jobPageUrl(publicUrl: string, id: string): string {
  return `${publicUrl.replace(/\/+$/, '')}${jobPagePath(id)}`;
}

export function jobPagePath(id: string): string {
  return `/jobs/${encodeURIComponent(id)}`;
}
