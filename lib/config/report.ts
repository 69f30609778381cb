// `report:`, `report_token:` and `report_api:` in shipkit.yml (docs/hook-server.md): commit
// statuses back to the forge, set at the top level (the default for every repo) or per repo.
// A repo that reports to the same forge as the top level inherits the token and API address it
// does not set itself; a repo that names another forge gives its own. `report: off` in a repo
// turns a top-level report off for it. The token is a secret: resolved at start, never logged.
import path from 'node:path';
import { configError, formatKeyPath, getKey, type ConfigDoc, type KeyPath } from '../core/yaml-config.ts';
import { resolveSecret } from '../core/secrets.ts';
import { isLoopbackHost } from '../http/loopback.ts';

export const REPORT_FORGES = ['github', 'gitea', 'gitlab'] as const;
export type ReportForge = (typeof REPORT_FORGES)[number];
export const REPORT_KEYS = ['report', 'report_token', 'report_api'] as const;
export const GITHUB_API = 'https://api.github.com';

/** A repo's effective reporting settings, token unresolved. */
export interface ReportConfig {
  forge: ReportForge;
  /** `env:NAME`, `file:PATH` or the literal token. */
  token: string;
  /** Where the token was configured (FILE:LINE in errors). */
  tokenKeyPath: KeyPath;
  /** The API base without a trailing slash. */
  api: string;
}

export interface ResolvedReport {
  forge: ReportForge;
  token: string;
  api: string;
}

/** The keys as written at one level (top level or a repo). */
interface ReportKeys {
  report?: ReportForge | 'off';
  token?: string;
  api?: string;
  at: KeyPath;
}

function readKeys(doc: ConfigDoc, at: KeyPath, allowOff: boolean): ReportKeys {
  const report = getKey(doc, [...at, 'report'], 'string');
  const allowed = allowOff ? [...REPORT_FORGES, 'off'] : [...REPORT_FORGES];
  if (report !== undefined && !allowed.includes(report)) {
    throw configError(
      doc,
      [...at, 'report'],
      `must be one of ${allowed.join(', ')}, got ${JSON.stringify(report.slice(0, 40))}.`,
    );
  }
  const api = getKey(doc, [...at, 'report_api'], 'string');
  if (api !== undefined) {
    const problem = apiProblem(api);
    if (problem) throw configError(doc, [...at, 'report_api'], problem);
  }
  return { report: report as ReportKeys['report'], token: getKey(doc, [...at, 'report_token'], 'string'), api, at };
}

/** The top level's keys; checked now, so a mistake fails at start even with no repo using them. */
export function parseTopReport(doc: ConfigDoc): ReportKeys {
  const top = readKeys(doc, [], false);
  if (!top.report && (top.token !== undefined || top.api !== undefined)) {
    const key = top.token !== undefined ? 'report_token' : 'report_api';
    throw configError(
      doc,
      [key],
      `is set but report: is not; add report: ${REPORT_FORGES.join(' | ')} (or remove ${key}).`,
    );
  }
  return top;
}

/**
 * A repo's effective settings: its own, else the top level's. `name` is the repo's full name and
 * `url` its configured clone URL (the Gitea and GitLab API addresses are derived from it).
 */
export function parseRepoReport(
  doc: ConfigDoc,
  top: ReportKeys,
  repoKeyPath: KeyPath,
  name: string,
  url: string | undefined,
): ReportConfig | undefined {
  const own = readKeys(doc, repoKeyPath, true);
  if (own.report === 'off') return undefined;
  const forge = (own.report ?? top.report) as ReportForge | undefined; // never "off" at the top level
  if (!forge) {
    if (own.token !== undefined || own.api !== undefined) {
      const key = own.token !== undefined ? 'report_token' : 'report_api';
      throw configError(
        doc,
        [...repoKeyPath, key],
        `is set but report: is not (here or at the top level); add report: ${REPORT_FORGES.join(' | ')}.`,
      );
    }
    return undefined;
  }
  // Another forge than the top level's: nothing of the top level's applies.
  const inherit = !own.report || own.report === top.report;
  const reportAt = own.report ? [...repoKeyPath, 'report'] : ['report'];
  const tokenKeyPath =
    own.token !== undefined
      ? [...repoKeyPath, 'report_token']
      : inherit && top.token !== undefined
        ? ['report_token']
        : undefined;
  const token = own.token ?? (inherit ? top.token : undefined);
  if (token === undefined || tokenKeyPath === undefined) {
    throw configError(
      doc,
      reportAt,
      `${forge} needs report_token: (env:NAME or file:PATH) for ${name}, at the top level or in repos.${name}.`,
    );
  }
  if (forge !== 'gitlab' && name.split('/').length !== 2) {
    throw configError(
      doc,
      reportAt,
      `${forge} needs an owner/name repository; ${name} has ${name.split('/').length} parts (GitLab groups are report: gitlab).`,
    );
  }
  const api = own.api ?? (inherit ? top.api : undefined) ?? defaultApi(forge, name, url);
  if (typeof api !== 'string') {
    throw configError(
      doc,
      url ? [...repoKeyPath, 'url'] : reportAt,
      `${url ? 'report: ' : ''}${forge}: ${api.problem}; set report_api (such as ` +
        `${forge === 'gitea' ? 'https://gitea.example.com/api/v1' : 'https://gitlab.example.com/api/v4'}).`,
    );
  }
  return { forge, token, tokenKeyPath, api };
}

/** GitHub's public API; for Gitea and GitLab, the forge that serves the clone URL. */
function defaultApi(forge: ReportForge, name: string, url: string | undefined): string | { problem: string } {
  if (forge === 'github') return GITHUB_API;
  if (!url) return { problem: 'there is no default API address, and no url: to derive it from' };
  let clone: URL;
  try {
    clone = new URL(url);
  } catch {
    return { problem: 'the API address cannot be derived from url: (not an http(s) URL)' };
  }
  if (clone.protocol !== 'https:' && clone.protocol !== 'http:')
    return { problem: `the API address cannot be derived from a ${clone.protocol.replace(/:$/, '')} url:` };
  // A forge served under a path (https://host/git/octo/site.git) has its API under that path too.
  const suffix = new RegExp(`/${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(\\.git)?/?$`, 'i');
  const base = clone.pathname.replace(suffix, '').replace(/\/+$/, '');
  const api = `${clone.origin}${suffix.test(clone.pathname) ? base : ''}/api/${forge === 'gitea' ? 'v1' : 'v4'}`;
  const problem = apiProblem(api);
  return problem ? { problem: `the API address derived from url: (${api}) ${problem.replace(/\.$/, '')}` } : api;
}

/** Why `text` cannot be an API base: absolute http(s), no credentials, http only on loopback. */
export function apiProblem(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'must be an absolute URL such as https://api.github.com.';
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'must start with https://.';
  if (url.username || url.password) return 'must not carry a user name or password; the token goes in report_token.';
  if (url.search || url.hash) return 'must not have a query (?) or fragment (#); give the API base only.';
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname))
    return 'must be https:// (plain http would send the token in clear text; it is accepted only for loopback addresses).';
  return undefined;
}

/** The API base as requests are built from it: no trailing slash. */
export function apiBase(text: string): string {
  return new URL(text).href.replace(/\/+$/, '');
}

/** Resolve each repo's token (a secret: never logged, errors name the key). */
export async function resolveReports(
  doc: ConfigDoc,
  repos: Iterable<{ name: string; report?: ReportConfig }>,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Map<string, ResolvedReport>> {
  const resolved = new Map<string, ResolvedReport>();
  const tokens = new Map<string, string>();
  for (const repo of repos) {
    if (!repo.report) continue;
    const { forge, token, tokenKeyPath, api } = repo.report;
    const where = `${doc.locate(tokenKeyPath)}: ${formatKeyPath(tokenKeyPath)}`;
    const value = tokens.get(where) ?? (await resolveSecret(token, { env, baseDir: path.dirname(doc.file), where }));
    tokens.set(where, value);
    resolved.set(repo.name, { forge, token: value, api: apiBase(api) });
  }
  return resolved;
}
