// Where a job's page lives: `GET /jobs/ID` answers HTML to a browser (Accept prefers text/html)
// and JSON to the read API. Commit statuses (target_url) and notifications link here.
//
// Behind a proxy that serves hook-server under a path (`public_url: https://ci.example.com/ci`,
// nginx `location /ci/ { proxy_pass http://127.0.0.1:9000/; }`), hook-server still gets its
// routes without the prefix; the pages put it in front of every link, form action, redirect,
// asset and the cookie's Path. lib/config/shipkit-yml.ts lets only [A-Za-z0-9._~-] segments in that path.

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
