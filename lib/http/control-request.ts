// The signed control protocol every shipkit listener speaks (DESIGN §5 slave-activate, and
// launchfit's `control.listen`): `GET /?repo=NAME[&wait=1]` and `GET /status`, each signed
// (lib/http/signing.ts). This reads one request into what it asks for, or the answer that refuses
// it; the listeners decide what "activate" means (a clone, an update check).
import type { IncomingMessage } from 'node:http';
import { pathAndQueryOf } from './server.ts';
import { nameProblem } from '../core/names.ts';
import type { createRequestVerifier } from './signing.ts';

export type ControlRequest =
  | { kind: 'status' }
  | { kind: 'activate'; repo: string; wait: boolean }
  | { kind: 'refused'; status: number; error: string; reason: string; headers?: Record<string, string> };

export interface ControlRequestOptions {
  /** undefined = unsigned requests accepted (only with --insecure). */
  verifier?: ReturnType<typeof createRequestVerifier>;
  /** Accept `owner/name` as well as `name` (launchfit matches an app by its last part). */
  allowOwner?: boolean;
  maxUrlLength?: number;
}

const refuse = (status: number, error: string, reason = error, headers?: Record<string, string>): ControlRequest => ({ kind: 'refused', status, error, reason, headers });

export function readControlRequest(req: IncomingMessage, { verifier, allowOwner = false, maxUrlLength = 2048 }: ControlRequestOptions): ControlRequest {
  if (req.method !== 'GET' && req.method !== 'HEAD') return refuse(405, 'method not allowed', `method ${req.method}`, { Allow: 'GET' });
  const target = pathAndQueryOf(req); // exactly as sent: what the signature covers
  if (target.length > maxUrlLength) return refuse(414, 'URI too long');
  if (verifier) {
    const verdict = verifier.verify(req.method, target, req.headers);
    if (!verdict.ok) return refuse(401, 'unauthorized', verdict.reason);
  }
  const url = new URL(target, 'http://shipkit.invalid');
  if (url.pathname === '/status') return { kind: 'status' };
  if (url.pathname !== '/') return refuse(404, 'not found');
  const repos = url.searchParams.getAll('repo');
  if (repos.length !== 1) return refuse(400, repos.length ? 'give one repo' : 'missing repo');
  const repo = repos[0];
  const parts = allowOwner ? repo.split('/') : [repo];
  const problem = parts.length > 2 ? 'has more than one "/"' : parts.map(nameProblem).find(Boolean);
  if (problem) return refuse(400, 'invalid repo name', `invalid repo name ${JSON.stringify(repo.slice(0, 60))}: it ${problem}`);
  return { kind: 'activate', repo, wait: url.searchParams.get('wait') === '1' };
}
