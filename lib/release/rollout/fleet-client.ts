// The publisher's side of hook-server's fleet routes that are not a rollout: where they are
// (`--fleet URL`, shared with `release rollout`), and POST /fleet/forget for `shipkit fleet
// forget` (docs/fleet.md "Forgetting hosts"): named hosts sent in batches the route takes, or
// every host silent for N days; signed with the app's secret.
import { ConfigError, RemoteError, ValidationError, messageOf } from '../../core/errors.ts';
import { validateName } from '../../core/names.ts';
import { readAtMost } from '../../http/read-at-most.ts';
import { signRequest } from '../../http/signing.ts';
import { MAX_FORGET_HOSTS, MAX_SILENT_DAYS, type VersionOnHosts } from '../format/fleet-report.ts';
import { HOST_ID_PATTERN } from '../format/bucket.ts';
import { leanFetch } from '../../http/client.ts';

/** An answer of POST /fleet/forget is a few dozen bytes; more is not one. */
const MAX_ANSWER_BYTES = 64 * 1024;

/** hook-server's base URL from `--fleet`, ending in a slash so that `fleet/…` goes below it. */
export function fleetBase(url: string): URL {
  let base: URL;
  try {
    base = new URL(url);
  } catch {
    throw new ValidationError(
      `Invalid --fleet ${JSON.stringify(url.slice(0, 80))}: give hook-server's URL, e.g. http://ci.example.com:8080.`,
    );
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:')
    throw new ValidationError(`Invalid --fleet ${url}: it must be an http or https URL.`);
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  return base;
}

export interface ForgetOptions {
  /** hook-server's base URL (`--fleet`). */
  fleet: string;
  app: string;
  /** The app's fleet secret, resolved. */
  secret: string;
  /** Forget these hosts… */
  hosts?: string[];
  /** …or every host whose latest report is older than this many days. */
  silentForDays?: number;
  fetch?: typeof globalThis.fetch;
  signal?: AbortSignal;
}

/** The first of `hosts` that is not a host id (32 lowercase hex characters), if any. */
export function badHostId(hosts: readonly string[]): string | undefined {
  return hosts.find((host) => !HOST_ID_PATTERN.test(host));
}

/** Ask hook-server to forget hosts of `app`; how many it had and forgot. Nothing is sent when an argument is wrong. */
export async function forgetHosts(opts: ForgetOptions): Promise<number> {
  validateName(opts.app, 'app name');
  const base = fleetBase(opts.fleet);
  const { hosts, silentForDays } = opts;
  if ((hosts === undefined) === (silentForDays === undefined))
    throw new ValidationError('Name the hosts to forget, or how many days silent, not both.');
  if (hosts) {
    const bad = badHostId(hosts);
    if (bad !== undefined)
      throw new ValidationError(
        `${JSON.stringify(bad.slice(0, 40))} is not a host id: 32 lowercase hex characters, as in DIR/.launchfit/host-id.`,
      );
    if (hosts.length === 0) throw new ValidationError('Name at least one host to forget.');
    let forgotten = 0;
    for (let i = 0; i < hosts.length; i += MAX_FORGET_HOSTS)
      forgotten += await postForget(base, opts, { app: opts.app, hosts: hosts.slice(i, i + MAX_FORGET_HOSTS) });
    return forgotten;
  }
  if (!Number.isSafeInteger(silentForDays) || silentForDays! < 1 || silentForDays! > MAX_SILENT_DAYS)
    throw new ValidationError(`Days silent must be a whole number from 1 to ${MAX_SILENT_DAYS}.`);
  return postForget(base, opts, { app: opts.app, silent_for_days: silentForDays });
}

/** One signed POST /fleet/forget; refusals that a fix of the command or config cures are ConfigErrors (exit 2). */
async function postForget(base: URL, opts: ForgetOptions, request: Record<string, unknown>): Promise<number> {
  const url = new URL('fleet/forget', base);
  const body = JSON.stringify(request);
  const headers = { ...signRequest(opts.secret, 'POST', url.pathname, { body }), 'Content-Type': 'application/json' };
  let response: Response;
  try {
    response = await (opts.fetch ?? leanFetch)(url, {
      method: 'POST',
      headers,
      body,
      signal: AbortSignal.any([AbortSignal.timeout(30_000), ...(opts.signal ? [opts.signal] : [])]),
    });
  } catch (error) {
    const why = messageOf((error as { cause?: unknown }).cause ?? error);
    throw new RemoteError(`Could not reach hook-server at ${base.origin} (${why}); is --fleet right?`, {
      cause: error,
    });
  }
  const text = (await readAtMost(response.body, MAX_ANSWER_BYTES)).toString('utf8');
  let answer: { forgotten?: unknown; error?: unknown } = {};
  try {
    answer = JSON.parse(text) as typeof answer;
  } catch {
    // Said below by the status.
  }
  const said = typeof answer.error === 'string' ? `: ${answer.error.slice(0, 300)}` : '';
  if (response.status === 401 || response.status === 403)
    throw new ConfigError(
      `hook-server refused POST ${url.pathname} (${response.status}): --fleet-secret is not the secret of ` +
        `app ${opts.app} in its fleet: section.`,
    );
  if (response.status === 404)
    throw new ConfigError(
      `hook-server at ${base.origin} does not know app ${opts.app} (404): is it under fleet: in its shipkit.yml?`,
    );
  if (response.status === 405)
    throw new ConfigError(`hook-server at ${base.origin} has no POST /fleet/forget (405): upgrade it.`);
  if (response.status === 400) throw new ValidationError(`hook-server refused the request${said}.`);
  if (response.status !== 200) throw new RemoteError(`POST ${url.pathname} answered ${response.status}${said}.`);
  if (typeof answer.forgotten !== 'number')
    throw new RemoteError(`POST ${url.pathname} answered without the number of hosts forgotten.`);
  return answer.forgotten;
}

/** GET /fleet/APP/releases is a few hundred bytes a release; more than this is not one. */
const MAX_RELEASES_ANSWER = 32 * 1024 * 1024;

export interface FleetReleasesOptions {
  /** hook-server's base URL (`--fleet`). */
  fleet: string;
  app: string;
  /** The app's fleet secret, resolved. */
  secret: string;
  fetch?: typeof globalThis.fetch;
}

/** GET /fleet/APP/releases, signed with the app's secret: per version, its hosts. 401/404 are ConfigErrors (exit 2). */
export async function fetchFleetReleases(
  opts: FleetReleasesOptions,
): Promise<{ hosts: number; versions: VersionOnHosts[] }> {
  validateName(opts.app, 'app name');
  const base = fleetBase(opts.fleet);
  const url = new URL(`fleet/${encodeURIComponent(opts.app)}/releases?limit=0`, base);
  let response: Response;
  try {
    response = await (opts.fetch ?? leanFetch)(url, {
      headers: signRequest(opts.secret, 'GET', `${url.pathname}${url.search}`),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (error) {
    const why = messageOf((error as { cause?: unknown }).cause ?? error);
    throw new RemoteError(`Could not reach hook-server at ${base.origin} (${why}); is --fleet right?`, {
      cause: error,
    });
  }
  const text = (await readAtMost(response.body, MAX_RELEASES_ANSWER)).toString('utf8');
  if (response.status === 401 || response.status === 403)
    throw new ConfigError(
      `hook-server refused GET ${url.pathname} (${response.status}): --fleet-secret is not the secret of ` +
        `app ${opts.app} in its fleet: section.`,
    );
  if (response.status === 404)
    throw new ConfigError(
      `hook-server at ${base.origin} has no ${url.pathname} (404): is app ${opts.app} under fleet: in its ` +
        `shipkit.yml, and is hook-server new enough?`,
    );
  if (response.status !== 200) throw new RemoteError(`GET ${url.pathname} answered ${response.status}.`);
  let answer: { hosts?: unknown; versions?: unknown; unlisted?: unknown };
  try {
    answer = JSON.parse(text) as typeof answer;
  } catch {
    throw new RemoteError(`GET ${url.pathname} answered something other than JSON.`);
  }
  if (typeof answer.hosts !== 'number' || !Array.isArray(answer.versions) || !Array.isArray(answer.unlisted))
    throw new RemoteError(`GET ${url.pathname} answered JSON without hosts, versions and unlisted.`);
  const versions = [...answer.versions, ...answer.unlisted].flatMap((r: Partial<VersionOnHosts>) =>
    typeof r?.version === 'string' && typeof r.hosts === 'number'
      ? [
          {
            version: r.version,
            hosts: r.hosts,
            verified: Number(r.verified) || 0,
            mismatched: Number(r.mismatched) || 0,
            held_by_all: r.held_by_all === true,
          },
        ]
      : [],
  );
  return { hosts: answer.hosts, versions };
}
