// The signed control protocol every shipkit listener speaks (docs/slave-activate.md, and
// launchfit's `control.listen`): `GET /?repo=NAME[&wait=1]` and `GET /status` (and launchfit's
// `GET /prepare?repo=NAME`), each signed
// (lib/http/signing.ts). This reads one request into what it asks for, or the answer that refuses
// it; the listeners decide what "activate" means (a clone, an update check).
import type { IncomingMessage } from 'node:http';
import { pathAndQueryOf } from './server.ts';
import { UsageError } from '../core/errors.ts';
import { nameProblem } from '../core/names.ts';
import type { RequestVerifier } from './signing.ts';

export type ControlRequest =
  | { kind: 'status' }
  | { kind: 'activate'; repo: string; wait: boolean }
  | { kind: 'prepare'; repo: string }
  | { kind: 'refused'; status: number; error: string; reason: string; headers?: Record<string, string> };

export interface ControlRequestOptions {
  /** undefined = unsigned requests accepted (only with --insecure). */
  verifier?: RequestVerifier;
  /** Accept `owner/name` as well as `name` (launchfit matches an app by its last part). */
  allowOwner?: boolean;
  maxUrlLength?: number;
  /** The path the protocol is served under (`/hooks/slave`); '' = the root. See routeUnderPrefix. */
  prefix?: string;
  /**
   * Also `GET /prepare?repo=NAME`: get ready for the next activation without making it (launchfit
   * downloads, verifies and installs the offered release before its wave). A listener without it
   * answers 404, never an activation.
   */
  prepare?: boolean;
}

const refuse = (status: number, error: string, reason = error, headers?: Record<string, string>): ControlRequest => ({
  kind: 'refused',
  status,
  error,
  reason,
  headers,
});

/** `--prefix` as given → `/a/b` (no trailing slash), or '' for the root; refuses anything but a plain path. */
export function parsePrefix(value: string): string {
  const trimmed = value.replace(/\/+$/, '');
  if (trimmed === '') return '';
  if (!/^(\/[A-Za-z0-9._~-]+)+$/.test(trimmed) || trimmed.split('/').some((part) => part === '.' || part === '..')) {
    throw new UsageError(
      `Invalid prefix ${JSON.stringify(value.slice(0, 80))}: give a path such as /hooks/slave (letters, digits, . _ ~ - between slashes).`,
    );
  }
  return trimmed;
}

/**
 * A listener served under PREFIX is reached two ways: directly (`/hooks/slave/?repo=a`) or through
 * a reverse proxy that strips the prefix (`/?repo=a`). The sender signed the path it sent, with the
 * prefix; so the route is the path without the prefix, and the signature is checked against the
 * path as received and, when the prefix was stripped on the way, against PREFIX + path.
 */
export function routeUnderPrefix(target: string, prefix: string): { route: string; signed: string[] } {
  if (!prefix) return { route: target, signed: [target] };
  const rest = target.slice(prefix.length);
  if (target.startsWith(prefix) && (rest === '' || rest.startsWith('/') || rest.startsWith('?'))) {
    return { route: rest.startsWith('/') ? rest : `/${rest}`, signed: [target] };
  }
  return { route: target, signed: [target, prefix + target] };
}

export function readControlRequest(
  req: IncomingMessage,
  { verifier, allowOwner = false, maxUrlLength = 2048, prefix = '', prepare = false }: ControlRequestOptions,
): ControlRequest {
  if (req.method !== 'GET' && req.method !== 'HEAD')
    return refuse(405, 'method not allowed', `method ${req.method}`, { Allow: 'GET' });
  const target = pathAndQueryOf(req); // exactly as sent: what the signature covers
  if (target.length > maxUrlLength) return refuse(414, 'URI too long');
  const { route, signed } = routeUnderPrefix(target, prefix);
  if (verifier) {
    const verdict = verifier.verify(req.method, signed, req.headers);
    if (!verdict.ok) return refuse(401, 'unauthorized', verdict.reason);
  }
  const url = new URL(route, 'http://shipkit.invalid');
  if (url.pathname === '/status') return { kind: 'status' };
  const preparing = prepare && url.pathname === '/prepare';
  if (url.pathname !== '/' && !preparing) return refuse(404, 'not found');
  const repos = url.searchParams.getAll('repo');
  if (repos.length !== 1) return refuse(400, repos.length ? 'give one repo' : 'missing repo');
  const repo = repos[0];
  const parts = allowOwner ? repo.split('/') : [repo];
  const problem = parts.length > 2 ? 'has more than one "/"' : parts.map(nameProblem).find(Boolean);
  if (problem)
    return refuse(400, 'invalid repo name', `invalid repo name ${JSON.stringify(repo.slice(0, 60))}: it ${problem}`);
  if (preparing) return { kind: 'prepare', repo };
  return { kind: 'activate', repo, wait: url.searchParams.get('wait') === '1' };
}
