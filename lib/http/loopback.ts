// Plain http:// is accepted only where nothing crosses a network: a loopback host. One rule for
// every place a token or credential could otherwise travel in clear text (a forge's API for
// commit statuses, a private repository's git remote).

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/i;

/** Whether a URL's `hostname` (as `new URL()` gives it: IPv6 in brackets) is this machine. */
export function isLoopbackHost(hostname: string): boolean {
  return LOOPBACK.test(hostname);
}
