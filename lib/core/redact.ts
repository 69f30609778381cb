// Credentials never reach a log or an error message: the one redaction every system uses for
// URLs (clone URLs, download URLs, rsync and git remotes in a command line or in git's stderr).

// A scheme, `://`, then the authority up to its last `@` (a password may hold an unencoded `@`);
// the authority ends at white space, `/`, `?` or `#`, so an `@` in a path or query is not touched.
const URL_CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/)[^\s/?#]*@/gi;

/**
 * Every `scheme://user:password@host` or `scheme://token@host` in `text` becomes
 * `scheme://***@host`. scp-style `git@host:path` has no `://` and holds no secret: it is kept.
 */
export function redactUrls(text: string): string {
  return text.replace(URL_CREDENTIALS, '$1***@');
}
