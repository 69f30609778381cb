// `notify:` in shipkit.yml (DESIGN §5 hook-server), top level and per repo: Slack-compatible
// incoming webhooks and signed JSON webhooks, each on success, failure and/or recovery. URLs may
// be secrets (a Slack webhook URL is one): they are resolved at start and never logged or shown
// in an error, which names the key instead.
import path from 'node:path';
import { checkKnownKeys, configError, getKey, type ConfigDoc, type KeyPath } from '../core/yaml-config.ts';
import { resolveSecret } from '../core/secrets.ts';
import { ConfigError } from '../core/errors.ts';

export const NOTIFY_EVENTS = ['success', 'failure', 'recovery'] as const;
export type NotifyEvent = (typeof NOTIFY_EVENTS)[number];
export const DEFAULT_EVENTS: readonly NotifyEvent[] = ['failure', 'recovery'];
export type Channel = 'slack' | 'webhook';

export interface NotifyTarget {
  channel: Channel;
  /** `env:NAME`, `file:PATH` or the literal URL, unresolved. */
  url: string;
  /** The webhook's signing secret, unresolved. */
  secret?: string;
  on: NotifyEvent[];
  /** `notify[0]` or `repos.octo/site.notify[1]`: how logs and errors name it. */
  where: string;
}

export interface ResolvedTarget extends Omit<NotifyTarget, 'url' | 'secret'> {
  url: URL;
  secret?: string;
}

const KEYS = ['slack', 'webhook', 'secret', 'on'] as const;

/** The list at `[...keyPath, 'notify']`, or undefined when the key is absent. */
export function parseNotifyList(doc: ConfigDoc, keyPath: KeyPath): NotifyTarget[] | undefined {
  const at = [...keyPath, 'notify'];
  const list = getKey(doc, at, 'array');
  if (list === undefined) return undefined;
  return list.map((entry, i) => parseTarget(doc, [...at, i], entry));
}

function parseTarget(doc: ConfigDoc, at: KeyPath, entry: unknown): NotifyTarget {
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) throw configError(doc, at, 'each notification must be a mapping such as {slack: env:SLACK_WEBHOOK_URL}.');
  checkKnownKeys(doc, at, KEYS);
  const slack = getKey(doc, [...at, 'slack'], 'string');
  const webhook = getKey(doc, [...at, 'webhook'], 'string');
  if ((slack === undefined) === (webhook === undefined)) throw configError(doc, at, 'give exactly one of slack: or webhook: (a URL, env:NAME or file:PATH).');
  const channel: Channel = slack !== undefined ? 'slack' : 'webhook';
  const url = (slack ?? webhook)!;
  const secret = getKey(doc, [...at, 'secret'], 'string');
  if (channel === 'webhook' && !secret) throw configError(doc, at, 'a webhook: needs secret: (env:NAME or file:PATH) to sign its requests.');
  if (channel === 'slack' && secret !== undefined) throw configError(doc, [...at, 'secret'], 'slack: takes no secret (the URL is the secret); remove it.');
  const on = (getKey(doc, [...at, 'on'], 'string[]') ?? [...DEFAULT_EVENTS]) as NotifyEvent[];
  if (on.length === 0) throw configError(doc, [...at, 'on'], `must list at least one of ${NOTIFY_EVENTS.join(', ')} (or remove the entry).`);
  on.forEach((event, j) => {
    if (!(NOTIFY_EVENTS as readonly string[]).includes(event)) throw configError(doc, [...at, 'on', j], `unknown event ${JSON.stringify(event.slice(0, 40))}; events are ${NOTIFY_EVENTS.join(', ')}.`);
  });
  // A literal URL is checked now; a secret one once it is resolved.
  if (!/^(env|file):/.test(url)) checkUrl(url, () => configError(doc, [...at, channel], 'must be an http:// or https:// URL.'));
  return { channel, url, secret, on, where: at.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? k : `.${k}`)).join('') };
}

function checkUrl(text: string, fail: () => Error): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw fail();
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw fail();
  return url;
}

/** Resolve the URLs and secrets of every list: the top level's under `''`, each repo's own under its name. */
export async function resolveNotifyTargets(lists: Map<string, NotifyTarget[]>, { file, env = process.env }: { file: string; env?: NodeJS.ProcessEnv }): Promise<Map<string, ResolvedTarget[]>> {
  const baseDir = path.dirname(file);
  const resolved = new Map<string, ResolvedTarget[]>();
  for (const [owner, targets] of lists) {
    const list: ResolvedTarget[] = [];
    for (const t of targets) {
      const where = `${file}: ${t.where}`;
      const text = await resolveSecret(t.url, { env, baseDir, where: `${where}.${t.channel}` });
      const url = checkUrl(text, () => new ConfigError(`${where}.${t.channel}: the value of ${t.url.startsWith('env:') || t.url.startsWith('file:') ? t.url : 'the key'} is not an http:// or https:// URL.`));
      const secret = t.secret ? await resolveSecret(t.secret, { env, baseDir, where: `${where}.secret` }) : undefined;
      list.push({ channel: t.channel, on: t.on, where: t.where, url, secret });
    }
    resolved.set(owner, list);
  }
  return resolved;
}
