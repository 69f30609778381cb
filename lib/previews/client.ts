// `shipkit previews`' side of hook-server's previews API (docs/previews.md): GET /previews and the
// POSTs that approve, rebuild or remove one, with the read token; and the previews as a terminal
// shows them, every text from a forge escaped (lib/core/escape.ts shownEscaped).
import { RemoteError, messageOf } from '../core/errors.ts';
import { shownEscaped } from '../core/escape.ts';
import { leanFetch } from '../http/client.ts';
import { readAtMost } from '../http/read-at-most.ts';
import { parseListen } from '../http/server.ts';

/** One preview as GET /previews lists it. */
export interface PreviewView {
  repo: string;
  pr: number;
  name: string;
  url: string | null;
  head: string;
  state: string;
  since: string;
  reason?: string | null;
  job?: string | null;
  live_sha?: string | null;
}

export type PreviewAction = 'approve' | 'rebuild' | 'rm';

/** hook-server answered, and said no (its status and its own short message). */
export class PreviewRefused extends RemoteError {
  override name = 'PreviewRefused';
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

const MAX_ANSWER_BYTES = 16 * 1024 * 1024;
const TIMEOUT_MS = 30_000;

/** hook-server on this machine, from shipkit.yml's `listen:` (0.0.0.0 and :: asked on loopback). */
export function hookServerUrl(listen: string): string {
  const { host, port } = parseListen(listen);
  const reachable = host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `http://${reachable.includes(':') ? `[${reachable}]` : reachable}:${port}`;
}

export interface PreviewsClientOptions {
  /** hook-server's address; a path (a proxy's prefix) is kept. */
  url: string;
  token: string;
  fetch?: typeof fetch;
}

/** Every preview hook-server knows, newest change first. */
export async function listPreviews(options: PreviewsClientOptions): Promise<PreviewView[]> {
  const answer = (await ask(options, 'GET', 'previews')) as { previews?: unknown };
  if (!Array.isArray(answer?.previews))
    throw new RemoteError(`hook-server at ${options.url} answered GET /previews without a list of previews.`);
  return answer.previews as PreviewView[];
}

/** Approves, builds again or removes one preview; hook-server's record of it after. */
export async function actOnPreview(
  options: PreviewsClientOptions,
  action: PreviewAction,
  target: { repo: string; pr: number },
): Promise<PreviewView> {
  return (await ask(options, 'POST', `previews/${action}`, { repo: target.repo, pr: target.pr })) as PreviewView;
}

async function ask(options: PreviewsClientOptions, method: string, route: string, body?: unknown): Promise<unknown> {
  const base = new URL(options.url.endsWith('/') ? options.url : `${options.url}/`);
  const url = new URL(route, base);
  let response: Response;
  try {
    response = await (options.fetch ?? leanFetch)(url, {
      method,
      headers: {
        Authorization: `Bearer ${options.token}`,
        Accept: 'application/json',
        ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (error) {
    const why = messageOf((error as { cause?: unknown }).cause ?? error);
    throw new RemoteError(`Could not reach hook-server (${why}): is hook-server running? (${base.href})`, {
      cause: error,
    });
  }
  const text = (await readAtMost(response.body, MAX_ANSWER_BYTES)).toString('utf8');
  let answer: unknown;
  try {
    answer = JSON.parse(text);
  } catch {
    answer = undefined;
  }
  if (response.status !== 200) {
    const said = (answer as { error?: unknown } | undefined)?.error;
    const message = typeof said === 'string' ? shownEscaped(said.slice(0, 300)) : `HTTP ${response.status}`;
    const hint =
      response.status === 401
        ? ` (the token: of this shipkit.yml is not the one hook-server at ${base.origin} runs with)`
        : '';
    throw new PreviewRefused(response.status, `hook-server refused ${method} /${route}: ${message}${hint}.`);
  }
  if (answer === undefined)
    throw new RemoteError(`hook-server at ${base.href} answered ${method} /${route} with no JSON: is --url right?`);
  return answer;
}

/** `3 h`, `2 d`: how long ago `since` was. */
export function ageOf(since: string, now: Date): string {
  const at = Date.parse(since);
  if (!Number.isFinite(at)) return '?';
  const s = Math.max(0, Math.round((now.getTime() - at) / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86_400)} d`;
}

const shown = (value: unknown) => shownEscaped(value === null || value === undefined ? '' : String(value));
const head7 = (sha: unknown) => shown(sha).slice(0, 7);

/** The list as a table: NAME REPO STATE HEAD AGE URL, columns padded to their widest cell. */
export function formatPreviewTable(previews: PreviewView[], now: Date): string {
  if (previews.length === 0) return 'No previews.\n';
  const rows = [
    ['NAME', 'REPO', 'STATE', 'HEAD', 'AGE', 'URL'],
    ...previews.map((p) => [
      shown(p.name),
      shown(p.repo),
      shown(p.state),
      head7(p.head),
      ageOf(p.since, now),
      shown(p.url ?? '-'),
    ]),
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return (
    rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ')).join('\n') +
    '\n'
  );
}

/** One preview, a line per field. */
export function formatPreview(p: PreviewView, now: Date): string {
  const lines: Array<[string, string]> = [
    ['preview', `${shown(p.repo)}#${shown(p.pr)} (${shown(p.name)})`],
    ['state', `${shown(p.state)} since ${shown(p.since)} (${ageOf(p.since, now)} ago)`],
    ['head', shown(p.head)],
    ['url', shown(p.url ?? '-')],
  ];
  if (p.live_sha) lines.push(['live', shown(p.live_sha)]);
  if (p.reason) lines.push(['reason', shown(p.reason)]);
  if (p.job) lines.push(['job', shown(p.job)]);
  return lines.map(([k, v]) => `${`${k}:`.padEnd(9)}${v}`).join('\n') + '\n';
}
