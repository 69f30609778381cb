// `notify:` in shipkit.yml (docs/hook-server.md), top level and per repo: Slack-compatible
// incoming webhooks, signed JSON webhooks and e-mail through sendmail (lib/notify/email.ts), each
// on success, failure and/or recovery. URLs may
// be secrets (a Slack webhook URL is one): they are resolved at start and never logged or shown
// in an error, which names the key instead.
import { constants } from 'node:fs/promises';
import { canAccess } from '../core/fs.ts';
import path from 'node:path';
import { checkKnownKeys, configError, getKey, type ConfigDoc, type KeyPath } from '../core/yaml-config.ts';
import { resolveSecret } from '../core/secrets.ts';
import { ConfigError } from '../core/errors.ts';

export const DEFAULT_SENDMAIL = '/usr/sbin/sendmail';

// A practical subset of RFC 5322's addr-spec: dot-atom local part, a host name. No quoted local
// parts, no comments, no display names, nothing that could be a second address or an option.
const LOCAL = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;
const DOMAIN = /^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** Why `text` is not an address shipkit sends to, or undefined. */
export function emailAddressProblem(text: string): string | undefined {
  if (/[\r\n]/.test(text)) return 'must not contain a line break';
  if (text.length > 254) return 'is longer than 254 characters';
  const at = text.lastIndexOf('@');
  if (at <= 0) return 'must be a plain address such as ops@example.com';
  const local = text.slice(0, at);
  const domain = text.slice(at + 1);
  if (local.startsWith('-')) return 'must not start with "-"';
  if (local.length > 64 || !LOCAL.test(local) || !DOMAIN.test(domain))
    return 'must be a plain address such as ops@example.com (no display name, spaces, quotes or commas)';
  return undefined;
}

export const NOTIFY_EVENTS = ['success', 'failure', 'recovery'] as const;
export type NotifyEvent = (typeof NOTIFY_EVENTS)[number];
export const DEFAULT_EVENTS: readonly NotifyEvent[] = ['failure', 'recovery'];
export type Channel = 'slack' | 'webhook' | 'email';

export interface EmailTarget {
  to: string;
  from?: string;
  /** The sendmail program (absolute path). */
  sendmail: string;
}

export interface NotifyTarget {
  channel: Channel;
  /** `env:NAME`, `file:PATH` or the literal URL, unresolved (slack and webhook). */
  url?: string;
  email?: EmailTarget;
  /** The webhook's signing secret, unresolved. */
  secret?: string;
  on: NotifyEvent[];
  /** `notify[0]` or `repos.octo/site.notify[1]`: how logs and errors name it. */
  where: string;
}

export interface ResolvedTarget extends Omit<NotifyTarget, 'url' | 'secret'> {
  url?: URL;
  secret?: string;
}

const KEYS = ['slack', 'webhook', 'email', 'secret', 'on', 'from', 'sendmail'] as const;

/** The list at `[...keyPath, 'notify']`, or undefined when the key is absent. */
export function parseNotifyList(doc: ConfigDoc, keyPath: KeyPath): NotifyTarget[] | undefined {
  const at = [...keyPath, 'notify'];
  const list = getKey(doc, at, 'array');
  if (list === undefined) return undefined;
  return list.map((entry, i) => parseTarget(doc, [...at, i], entry));
}

function parseTarget(doc: ConfigDoc, at: KeyPath, entry: unknown): NotifyTarget {
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry))
    throw configError(doc, at, 'each notification must be a mapping such as {slack: env:SLACK_WEBHOOK_URL}.');
  checkKnownKeys(doc, at, KEYS);
  const slack = getKey(doc, [...at, 'slack'], 'string');
  const webhook = getKey(doc, [...at, 'webhook'], 'string');
  const to = getKey(doc, [...at, 'email'], 'string');
  if ([slack, webhook, to].filter((v) => v !== undefined).length !== 1)
    throw configError(
      doc,
      at,
      'give exactly one of slack: or webhook: (a URL, env:NAME or file:PATH) or email: (an address).',
    );
  const channel: Channel = slack !== undefined ? 'slack' : webhook !== undefined ? 'webhook' : 'email';
  const on = parseEvents(doc, at);
  const where = at.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? k : `.${k}`)).join('');
  if (channel === 'email') return { channel, email: parseEmail(doc, at, to!), on, where };
  for (const key of ['from', 'sendmail'])
    if (getKey(doc, [...at, key], 'string') !== undefined)
      throw configError(doc, [...at, key], `goes with email: only; remove it.`);
  const url = (slack ?? webhook)!;
  const secret = getKey(doc, [...at, 'secret'], 'string');
  if (channel === 'webhook' && !secret)
    throw configError(doc, at, 'a webhook: needs secret: (env:NAME or file:PATH) to sign its requests.');
  if (channel === 'slack' && secret !== undefined)
    throw configError(doc, [...at, 'secret'], 'slack: takes no secret (the URL is the secret); remove it.');
  // A literal URL is checked now; a secret one once it is resolved.
  if (!/^(env|file):/.test(url))
    checkUrl(url, () => configError(doc, [...at, channel], 'must be an http:// or https:// URL.'));
  return { channel, url, secret, on, where };
}

function parseEvents(doc: ConfigDoc, at: KeyPath): NotifyEvent[] {
  const on = (getKey(doc, [...at, 'on'], 'string[]') ?? [...DEFAULT_EVENTS]) as NotifyEvent[];
  if (on.length === 0)
    throw configError(
      doc,
      [...at, 'on'],
      `must list at least one of ${NOTIFY_EVENTS.join(', ')} (or remove the entry).`,
    );
  on.forEach((event, j) => {
    if (!(NOTIFY_EVENTS as readonly string[]).includes(event))
      throw configError(
        doc,
        [...at, 'on', j],
        `unknown event ${JSON.stringify(event.slice(0, 40))}; events are ${NOTIFY_EVENTS.join(', ')}.`,
      );
  });
  return on;
}

/** email:, from: and sendmail: of an e-mail entry; addresses that could inject a header are refused. */
function parseEmail(doc: ConfigDoc, at: KeyPath, to: string): EmailTarget {
  if (getKey(doc, [...at, 'secret'], 'string') !== undefined)
    throw configError(doc, [...at, 'secret'], 'email: takes no secret; remove it.');
  const from = getKey(doc, [...at, 'from'], 'string');
  for (const [key, value] of [
    ['email', to],
    ['from', from],
  ] as const) {
    const problem = value === undefined ? undefined : emailAddressProblem(value);
    if (problem) throw configError(doc, [...at, key], `${problem}.`);
  }
  const sendmail = getKey(doc, [...at, 'sendmail'], 'string') ?? DEFAULT_SENDMAIL;
  if (!path.isAbsolute(sendmail) || /[\r\n]/.test(sendmail))
    throw configError(
      doc,
      [...at, 'sendmail'],
      'must be the absolute path of the sendmail program (such as /usr/sbin/sendmail).',
    );
  return { to, from, sendmail };
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
export async function resolveNotifyTargets(
  lists: Map<string, NotifyTarget[]>,
  { file, env = process.env }: { file: string; env?: NodeJS.ProcessEnv },
): Promise<Map<string, ResolvedTarget[]>> {
  const baseDir = path.dirname(file);
  const resolved = new Map<string, ResolvedTarget[]>();
  for (const [owner, targets] of lists) {
    const list: ResolvedTarget[] = [];
    for (const t of targets) {
      const where = `${file}: ${t.where}`;
      if (t.email) {
        // Checked now, so a missing MTA is a start-up error and not a failed notification later.
        if (!(await canAccess(t.email.sendmail, constants.X_OK))) {
          throw new ConfigError(
            `${where}.sendmail: ${t.email!.sendmail} is not an executable program; install an MTA that ` +
              `provides sendmail (msmtp-mta, postfix, ...) or set sendmail: to its path.`,
          );
        }
        list.push({ channel: t.channel, on: t.on, where: t.where, email: t.email });
        continue;
      }
      const text = await resolveSecret(t.url!, { env, baseDir, where: `${where}.${t.channel}` });
      const url = checkUrl(
        text,
        () =>
          new ConfigError(
            `${where}.${t.channel}: the value of ${t.url!.startsWith('env:') || t.url!.startsWith('file:') ? t.url : 'the key'} is not an http:// or https:// URL.`,
          ),
      );
      const secret = t.secret ? await resolveSecret(t.secret, { env, baseDir, where: `${where}.secret` }) : undefined;
      list.push({ channel: t.channel, on: t.on, where: t.where, url, secret });
    }
    resolved.set(owner, list);
  }
  return resolved;
}
