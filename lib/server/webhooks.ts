// Forge webhooks, knowing nothing about HTTP: which forge sent a delivery, whether its
// signature (or GitLab token) matches, and what the payload means for shipkit. The signature is
// checked over the raw bytes, constant-time, before any parsing.
import { createHash, createHmac, type Hmac } from 'node:crypto';
import { ValidationError } from '../core/errors.ts';
import { safeEqual } from '../http/signing.ts';
import { normaliseGithub } from './forges/github.ts';
import { normaliseGitlab } from './forges/gitlab.ts';
import type { WebhookEvent } from './forges/payload.ts';

export const FORGES = ['github', 'gitea', 'gitlab'] as const;
export type Forge = (typeof FORGES)[number];
type Headers = Record<string, string | string[] | undefined>;

/** The forge named by the delivery's headers. Gitea/Forgejo/Gogs also send X-GitHub-Event, so they are checked first. */
export function detectForge(headers: Headers): Forge | undefined {
  if (header(headers, 'x-gitea-event') || header(headers, 'x-forgejo-event') || header(headers, 'x-gogs-event'))
    return 'gitea';
  if (header(headers, 'x-gitlab-event')) return 'gitlab';
  if (header(headers, 'x-github-event')) return 'github';
  return undefined;
}

/** The event name as the forge spells it (`push`, `release`, `Push Hook`, ...). */
export function eventName(forge: Forge, headers: Headers): string | undefined {
  if (forge === 'github') return header(headers, 'x-github-event');
  if (forge === 'gitlab') return header(headers, 'x-gitlab-event');
  return (
    header(headers, 'x-gitea-event') ??
    header(headers, 'x-forgejo-event') ??
    header(headers, 'x-gogs-event') ??
    header(headers, 'x-github-event')
  );
}

const DELIVERY_PATTERN = /^[A-Za-z0-9._:-]{1,100}$/;

/** The forge's delivery id; without one, a digest of the body stands in (same body = same delivery). */
export function deliveryId(forge: Forge, headers: Headers, body: Buffer): string {
  const names =
    forge === 'github'
      ? ['x-github-delivery']
      : forge === 'gitlab'
        ? ['idempotency-key', 'x-gitlab-event-uuid', 'x-gitlab-webhook-uuid']
        : ['x-gitea-delivery', 'x-forgejo-delivery', 'x-gogs-delivery', 'x-github-delivery'];
  for (const name of names) {
    const value = header(headers, name);
    if (value && DELIVERY_PATTERN.test(value)) return value;
  }
  return `sha256:${createHash('sha256').update(body).digest('hex').slice(0, 32)}`;
}

/**
 * Why a delivery carries nothing that could be verified (no signature or token header the forge
 * sends), or undefined. Known from the headers alone, so such a delivery is refused before its
 * body is read.
 */
export function missingSignature(forge: Forge, headers: Headers): string | undefined {
  if (forge === 'gitlab') return header(headers, 'x-gitlab-token') ? undefined : 'missing X-Gitlab-Token';
  const names =
    forge === 'gitea'
      ? ['x-hub-signature-256', 'x-gitea-signature', 'x-forgejo-signature', 'x-gogs-signature']
      : ['x-hub-signature-256'];
  if (names.some((name) => header(headers, name) !== undefined)) return undefined;
  if (header(headers, 'x-hub-signature'))
    return 'only a SHA-1 signature (X-Hub-Signature) was sent; SHA-1 is refused, use SHA-256';
  return 'missing signature';
}

/** `wrongSecret`: the signature (or token) is well-formed but not made with any secret hook-server has. */
export type Verdict = { ok: true; secret: string } | { ok: false; reason: string; wrongSecret?: true };

/** What a sender whose secret is not hook-server's is told (fixed text: it names the commonest cause). */
export const WRONG_SECRET_ANSWER = "bad signature: most likely the secret differs from hook-server's";

/**
 * HMACs of a body computed while it streams in, for every candidate secret (the default one and
 * per-repo ones), so that the body never has to be held to be verified.
 */
export interface BodyVerifier {
  update(chunk: Buffer): void;
  /** Call once the body is complete. */
  verify(forge: Forge, headers: Headers): Verdict;
}

export function createBodyVerifier(secrets: readonly string[]): BodyVerifier {
  const unique = [...new Set(secrets)];
  const hmacs: Array<[string, Hmac]> = unique.map((s) => [s, createHmac('sha256', s)]);
  let digests: Array<[string, string]> | undefined;
  return {
    update(chunk: Buffer) {
      for (const [, h] of hmacs) h.update(chunk);
    },
    /** Call once the body is complete. */
    verify(forge: Forge, headers: Headers): Verdict {
      digests ??= hmacs.map(([s, h]) => [s, h.digest('hex')]);
      return verifyAgainst(forge, headers, digests, unique);
    },
  };
}

/** Verify a whole body at once (tests and small callers). */
export function verifyDelivery(forge: Forge, headers: Headers, body: Buffer, secrets: readonly string[]): Verdict {
  const verifier = createBodyVerifier(secrets);
  verifier.update(body);
  return verifier.verify(forge, headers);
}

/**
 * A form-encoded delivery from Gitea, Forgejo or Gogs: those forges sign the JSON payload, which
 * the form carries URL-encoded in its one `payload=` field, not the form body itself (GitHub
 * signs the body as sent). The field is decoded, then verified like a JSON body.
 */
export function verifyGiteaForm(headers: Headers, body: Buffer, secrets: readonly string[]): Verdict {
  const signed = formPayloadField(body);
  if (signed === undefined) return { ok: false, reason: 'form body without exactly one payload= field' };
  return verifyDelivery('gitea', headers, Buffer.from(signed, 'utf8'), secrets);
}

function formPayloadField(body: Buffer): string | undefined {
  const values = new URLSearchParams(body.toString('utf8')).getAll('payload');
  return values.length === 1 ? values[0] : undefined;
}

function verifyAgainst(forge: Forge, headers: Headers, digests: Array<[string, string]>, secrets: string[]): Verdict {
  if (secrets.length === 0) return { ok: false, reason: 'no webhook secret is configured' };
  if (forge === 'gitlab') {
    const token = header(headers, 'x-gitlab-token');
    if (!token) return { ok: false, reason: 'missing X-Gitlab-Token' };
    // Every candidate is compared, so the time taken does not say which one matched.
    let found: string | undefined;
    for (const s of secrets) if (safeEqual(token, s) && found === undefined) found = s;
    return found === undefined
      ? {
          ok: false,
          wrongSecret: true,
          reason:
            "wrong X-Gitlab-Token: the secret token set at GitLab is not a webhook secret of hook-server's shipkit.yml",
        }
      : { ok: true, secret: found };
  }
  let given: string | undefined;
  const hub = header(headers, 'x-hub-signature-256');
  if (hub !== undefined) {
    const m = /^sha256=([0-9a-fA-F]{64})$/.exec(hub.trim());
    if (!m) return { ok: false, reason: 'malformed X-Hub-Signature-256' };
    given = m[1].toLowerCase();
  } else if (forge === 'gitea') {
    const bare =
      header(headers, 'x-gitea-signature') ??
      header(headers, 'x-forgejo-signature') ??
      header(headers, 'x-gogs-signature');
    if (bare !== undefined) {
      if (!/^[0-9a-fA-F]{64}$/.test(bare.trim())) return { ok: false, reason: 'malformed signature header' };
      given = bare.trim().toLowerCase();
    }
  }
  if (given === undefined) {
    if (header(headers, 'x-hub-signature'))
      return { ok: false, reason: 'only a SHA-1 signature (X-Hub-Signature) was sent; SHA-1 is refused, use SHA-256' };
    return { ok: false, reason: 'missing signature' };
  }
  let found: string | undefined;
  for (const [s, digest] of digests) if (safeEqual(given, digest) && found === undefined) found = s;
  return found === undefined
    ? {
        ok: false,
        wrongSecret: true,
        reason:
          "signature does not match the body: it was made with another secret than hook-server's (most " +
          "often the forge's or the git hook's secret differs from secret: in shipkit.yml), or the body was changed on the way",
      }
    : { ok: true, secret: found };
}

/**
 * What the forge signed about a push's place in time, for telling a replayed old delivery from a
 * new push: GitHub's `repository.pushed_at` (seconds) and `forced`; every forge's `before`.
 */

/** The content types a body may have; anything else is answered 415. */
export function bodyFormat(contentType: string | undefined): 'json' | 'form' | undefined {
  const type = (contentType ?? '').split(';')[0].trim().toLowerCase();
  if (type === 'application/json' || (type.startsWith('application/') && type.endsWith('+json'))) return 'json';
  if (type === 'application/x-www-form-urlencoded') return 'form';
  return undefined;
}

/** Parse a verified body into an object. Throws ValidationError (→ 400) for anything else. */
export function parsePayload(body: Buffer, format: 'json' | 'form'): Record<string, unknown> {
  let text = body.toString('utf8');
  if (format === 'form') {
    const payload = formPayloadField(body);
    if (payload === undefined) throw new ValidationError('form body without a payload= field (or with two)');
    text = payload;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ValidationError('body is not valid JSON', { cause: error });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new ValidationError('payload is not a JSON object');
  return value as Record<string, unknown>;
}

/** Turn a parsed payload into a shipkit event. Throws ValidationError (→ 400) for missing or unsafe fields. */
export function normaliseEvent(forge: Forge, event: string, payload: Record<string, unknown>): WebhookEvent {
  return forge === 'gitlab' ? normaliseGitlab(event, payload) : normaliseGithub(event, payload);
}

function header(headers: Headers, name: string): string | undefined {
  const value = headers[name];
  if (Array.isArray(value)) return value.length === 1 ? value[0] : undefined;
  return value === '' ? undefined : value;
}
