// How the pull step's git reaches a private repository over https with a token (docs/build.md):
// an Authorization header in git's config passed through the environment, scoped to the remote's
// origin, never in the URL, argv, .git/config or the log; redirects off for that origin.
// The whole story: docs/internals.md.
import path from 'node:path';
import { ConfigError } from '../core/errors.ts';
import { isLoopbackHost } from '../http/loopback.ts';
import { resolveSecret } from '../core/secrets.ts';
import type { ConfigDoc } from '../core/yaml-config.ts';
import { StepFailure } from './context.ts';
import { sshRemoteOf } from '../config/git-auth.ts';
import type { GitTokenConfig } from '../config/git-token.ts';
import { leanFetch } from '../http/client.ts';

export interface PreparedGitToken {
  /** For the pull step's git only. */
  env: Record<string, string>;
  /** The token and the header value made from it: masked in the job log. */
  secrets: string[];
  /** `https://host[:port]`: the only place the token is sent. */
  origin: string;
}

/** Why `url` cannot carry a token (a sentence), or its origin. */
export function tokenOrigin(url: string): { origin: string } | { problem: string } {
  if (sshRemoteOf(url))
    return {
      problem:
        `the remote ${url} is reached over ssh, where a token does not apply: use ssh_key: (a ` +
        `deploy key) for it, or an https:// url:`,
    };
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return {
      problem:
        `the remote ${url} is not an https:// address, so there is nothing to send a token to; set ` +
        `url: to the repository's https:// address`,
    };
  }
  if (parsed.protocol === 'http:' && !isLoopbackHost(parsed.hostname)) {
    return {
      problem:
        `the remote ${parsed.origin} is plain http://, where the token would cross the network ` +
        `readable by anyone on the way: use its https:// address`,
    };
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    return {
      problem:
        `the remote ${url} is not an https:// address, so there is nothing to send a token to; set ` +
        `url: to the repository's https:// address`,
    };
  }
  if (parsed.username || parsed.password)
    return {
      problem: `the remote's address carries a user name or password; remove it from url: (the token replaces it)`,
    };
  return { origin: parsed.origin };
}

/** git config entries in the environment: what `git -c KEY=VALUE` would set, without argv. */
export function gitConfigEnv(entries: Array<[string, string]>): Record<string, string> {
  const env: Record<string, string> = { GIT_CONFIG_COUNT: String(entries.length) };
  entries.forEach(([key, value], i) => {
    env[`GIT_CONFIG_KEY_${i}`] = key;
    env[`GIT_CONFIG_VALUE_${i}`] = value;
  });
  return env;
}

/**
 * Reads the token and checks it fits `url` (the address the pull fetches from); returns the
 * pull's environment. Every problem is a ConfigError (exit 2) naming FILE:LINE.
 */
export async function prepareGitToken(
  doc: ConfigDoc,
  config: GitTokenConfig | undefined,
  { url, env = process.env }: { url?: string; env?: NodeJS.ProcessEnv },
): Promise<PreparedGitToken | undefined> {
  if (!config) return undefined;
  const where = `${doc.locate(config.keyPath)}: token`;
  if (!url)
    throw new ConfigError(
      `${where}: ${doc.file} names no url: for this repository; set url: to its https:// address so the token is sent there only.`,
    );
  const target = tokenOrigin(url);
  if ('problem' in target) throw new ConfigError(`${where}: ${target.problem}.`);
  const token = await resolveSecret(config.token, { env, baseDir: path.dirname(doc.file), where });
  // A line break would end the header and start another one of the token's choosing.
  if (/[\s\x00-\x1f\x7f]/.test(token))
    throw new ConfigError(
      `${where}: the token holds a space, line break or control character; check that ` +
        `${config.token.startsWith('file:') ? 'the file holds the token alone' : 'it was copied whole and alone'}.`,
    );
  const basic = Buffer.from(`${config.user}:${token}`, 'utf8').toString('base64');
  const scope = `${target.origin}/`;
  return {
    origin: target.origin,
    secrets: [token, basic],
    env: {
      ...gitConfigEnv([
        [`http.${scope}.extraHeader`, `Authorization: Basic ${basic}`],
        [`http.${scope}.followRedirects`, 'false'],
        // The build user's credential helpers are not asked (nor told to forget) for this origin.
        [`credential.${scope}.helper`, ''],
      ]),
      // No askpass program either (an empty GIT_ASKPASS also hides core.askPass and SSH_ASKPASS).
      GIT_ASKPASS: '',
      GIT_TERMINAL_PROMPT: '0',
    },
  };
}

/**
 * A failed pull whose git output shows the token refused or a redirect, explained (async: a
 * redirect's target is looked up, without the token); any other error as it was.
 */
export async function explainGitTokenFailure(
  error: unknown,
  { url, token }: { url?: string; token?: GitTokenConfig },
  { probe = probeRedirect }: { probe?: (url: string) => Promise<string | undefined> } = {},
): Promise<unknown> {
  if (!token || !url || !(error instanceof StepFailure)) return error;
  const target = tokenOrigin(url);
  if (!('origin' in target)) return error;
  const output = error.lastLines.join('\n');
  const origin = target.origin;
  const failedUrl = /unable to access '([^']+)'/.exec(output)?.[1] ?? /for '([^']+)'/.exec(output)?.[1];
  const ours = failedUrl === undefined || originOf(failedUrl) === origin;
  let message: string | undefined;
  const status = /returned error: (\d{3})/.exec(output)?.[1];
  if (/could not read (Username|Password) for|Authentication failed for/.test(output) || status === '401') {
    message = ours
      ? `The token for ${origin} was refused (HTTP 401): check that token: in shipkit.yml holds a current ` +
        `token for this forge (not expired or revoked); for a GitLab deploy token, set token_user: to its user name.`
      : `${failedUrl} asked for a user name and password; the token is only sent to ${origin}, so a ` +
        `submodule on another host must be readable without it (or reached over ssh with ssh_key:).`;
  } else if (status && /^30[1278]$/.test(status)) {
    const to = failedUrl ? await probe(failedUrl).catch(() => undefined) : undefined;
    message =
      `The remote ${failedUrl ?? origin} redirected${to ? ` to ${to}` : ''} (HTTP ${status}); the ` +
      `token is only sent to ${origin} and redirects are not followed with it: set url: in shipkit.yml to the final address.`;
  } else if (ours && status === '403') {
    message =
      `The token for ${origin} may not read this repository (HTTP 403): give it read access to ` +
      `the repository (GitHub: Contents read-only; Gitea: read:repository; GitLab: read_repository).`;
  } else if (ours && (status === '404' || /repository '[^']*' not found/.test(output))) {
    message =
      `${origin} says the repository does not exist (HTTP 404), which forges also answer when the ` +
      `token may not see it: check url: and give the token read access to the repository.`;
  }
  if (!message) return error;
  const explained = new StepFailure(message, {
    lastLines: error.lastLines,
    timedOut: error.timedOut,
    commandExit: error.commandExit,
  });
  explained.cause = error;
  return explained;
}

function originOf(url: string): string | undefined {
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}

/** Where `url`'s smart-HTTP discovery redirects to, asked without credentials. */
async function probeRedirect(url: string): Promise<string | undefined> {
  const discovery = `${url.replace(/\/+$/, '')}/info/refs?service=git-upload-pack`;
  const response = await leanFetch(discovery, { redirect: 'manual', signal: AbortSignal.timeout(5_000) });
  await response.body?.cancel();
  const location = response.headers.get('location');
  if (!location) return undefined;
  return new URL(location, discovery).href.replace(/\/info\/refs\?service=git-upload-pack$/, '');
}
