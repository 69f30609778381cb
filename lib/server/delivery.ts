// One webhook delivery, from its headers to 202 {"job":ID}: the forge and event named, the body
// refused unsigned before a byte is read, received under its cap (spooled to disk past 256 KB)
// while its HMAC is computed, verified in constant time before it is parsed, normalised
// (lib/server/webhooks.ts), held against shipkit.yml and the push guard, and only then queued.
// Every refusal is a fixed short answer with the request id; the details go to the log.
import { readFile, rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { ValidationError, messageOf } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { HttpError, receiveBody, sendJson, stopReading, type ReceivedBody } from '../http/server.ts';
import type { Refuse } from '../web/read-sources.ts';
import type { Admit, Answer, JobEvent } from './admit.ts';
import {
  bodyFormat,
  createBodyVerifier,
  type BodyVerifier,
  deliveryId,
  detectForge,
  eventName,
  missingSignature,
  normaliseEvent,
  parsePayload,
  verifyGiteaForm,
  WRONG_SECRET_ANSWER,
  type Forge,
  type Verdict,
} from './webhooks.ts';
import type { PullRequestEvent, WebhookEvent } from './forges/payload.ts';
import type { ListedSecret } from '../config/webhook-secret.ts';
import type { IntakeAnswer } from '../previews/shared-runner.ts';

/** Bodies larger than this are spooled to DATA/tmp while they stream in, so a flood stays out of memory. */
const SPILL_AT = 256 * 1024;

/** Each list holds the current secret first, then the old ones of a change-over. */
export interface Secrets {
  /** The top-level `secret:`, resolved. */
  fallback?: ListedSecret[];
  /** Per-repo `secret:` values, resolved. */
  repos: Map<string, ListedSecret[]>;
}

/** What the intake reads of shipkit.yml: the file's name, each repo's name, branch and whether it has `previews:`. */
export interface IntakeConfig {
  file: string;
  repos: Map<string, { name: string; branch: string; previews?: object }>;
}

export interface DeliveryOptions {
  config: IntakeConfig;
  secrets: Secrets;
  /** Holds the delivery against the push guard and queues it (lib/server/admit.ts), here or in the primary process. */
  admit: Admit;
  /** Whether the queue keeps each delivery's body (`queue:`), which admit is then handed. */
  keepsBody: boolean;
  log: Logger;
  maxBody: number;
  bodyTimeoutMs: number;
  /** DATA/tmp: where large bodies are spooled. */
  tmpDir: string;
  /** Told when a delivery for `repo` was signed with an old secret of a change-over. */
  onOldSecret?: (repo: string) => void;
  /** The preview runner's intake (lib/previews/runner.ts); absent where previews are not run. */
  previews?: (event: PullRequestEvent) => Promise<IntakeAnswer>;
}

/** What a request is before its body is read: which forge, which event, which body format. */
interface Heading {
  forge: Forge;
  event: string;
  format: 'json' | 'form';
}

/** A verified body with the secret that signed it. */
interface Verified {
  body: Buffer;
  verdict: Extract<Verdict, { ok: true }>;
}

export class DeliveryIntake {
  private readonly options: DeliveryOptions;
  private readonly allSecrets: string[];

  constructor(options: DeliveryOptions) {
    this.options = options;
    const { fallback, repos } = options.secrets;
    this.allSecrets = [...(fallback ?? []), ...[...repos.values()].flat()].map((s) => s.value);
    if (this.allSecrets.length === 0)
      options.log.warn('no webhook secret is configured: every delivery will be refused (set secret: in the config)');
  }

  /** POST to a forge's path (`target`: the forge it names, or 'detect' for `/`). */
  async handleDelivery(
    req: IncomingMessage,
    res: ServerResponse,
    target: Forge | 'detect',
    requestId: string,
    refuse: Refuse,
  ): Promise<void> {
    const heading = this.headingOf(req, target, refuse);
    if (!heading) return;
    // Nothing to verify: refused before a byte of the body is read (or `100 Continue` sent).
    const unsigned = this.allSecrets.length > 0 ? missingSignature(heading.forge, req.headers) : undefined;
    if (unsigned) return refuse(401, 'bad signature', unsigned);
    const verifier = createBodyVerifier(this.allSecrets);
    const received = await this.receive(req, res, requestId, (c) => verifier.update(c), refuse);
    if (!received) return;
    try {
      const verified = await this.verify(req, heading, received, verifier, refuse);
      if (!verified) return;
      const delivery = deliveryId(heading.forge, req.headers, verified.body);
      const rlog = this.options.log.child({
        request: requestId,
        forge: heading.forge,
        event: heading.event.slice(0, 40),
        delivery,
      });
      const meaning = this.interpret(heading, verified.body, refuse);
      if (!meaning) return;
      if (meaning.kind === 'ping') {
        rlog.info('ping', { repo: meaning.repo });
        return sendJson(res, 200, { ok: true, pong: true });
      }
      if (meaning.kind === 'ignored') {
        rlog.info('delivery ignored', { repo: meaning.repo, reason: meaning.reason });
        return sendJson(res, 200, { ok: true, ignored: meaning.reason });
      }
      const repo = this.repoFor(meaning, verified.verdict, res, rlog, refuse);
      if (!repo) return;
      if (meaning.kind === 'pull_request') return await this.answerPullRequest(meaning, repo, res, rlog);
      const raw = this.options.keepsBody
        ? { event: heading.event, format: heading.format, body: verified.body }
        : undefined;
      let answer: Answer;
      try {
        answer = await this.options.admit({
          repo,
          meaning,
          origin: { forge: heading.forge, delivery, event: heading.event, raw },
          requestId,
        });
      } catch (error) {
        return refuse(503, 'not accepting jobs now, retry later', messageOf(error));
      }
      if ('refused' in answer) return refuse(answer.status, answer.refused, answer.detail);
      return sendJson(res, answer.status, answer.json);
    } finally {
      if (received.file) await rm(received.file, { force: true });
    }
  }

  /** Method, content type, forge and event, all from the headers; undefined once refused. */
  private headingOf(req: IncomingMessage, target: Forge | 'detect', refuse: Refuse): Heading | undefined {
    if (req.method !== 'POST') return void refuse(405, 'method not allowed', undefined, { Allow: 'POST' });
    const format = bodyFormat(req.headers['content-type']);
    if (!format)
      return void refuse(
        415,
        'unsupported content type',
        `content type ${String(req.headers['content-type'] ?? 'missing').slice(0, 60)}`,
      );
    const forge = target === 'detect' ? detectForge(req.headers) : target;
    if (!forge) return void refuse(400, 'unknown forge', 'no X-GitHub-Event, X-Gitea-Event or X-Gitlab-Event header');
    const event = eventName(forge, req.headers);
    if (!event) return void refuse(400, 'missing event header');
    return { forge, event, format };
  }

  private async receive(
    req: IncomingMessage,
    res: ServerResponse,
    requestId: string,
    onChunk: (c: Buffer) => void,
    refuse: Refuse,
  ): Promise<ReceivedBody | undefined> {
    const { maxBody, bodyTimeoutMs, tmpDir } = this.options;
    try {
      return await receiveBody(req, {
        res,
        limit: maxBody,
        timeoutMs: bodyTimeoutMs,
        spillAt: SPILL_AT,
        spillFile: path.join(tmpDir, `body-${requestId}`),
        onChunk,
      });
    } catch (error) {
      const status = error instanceof HttpError ? error.status : 400;
      if (status === 503)
        return void refuse(503, 'cannot take deliveries now, retry later', messageOf(error), {
          'Retry-After': '30',
        });
      return void refuse(
        status,
        status === 413 ? 'body too large' : status === 408 ? 'body timeout' : 'could not read body',
        messageOf(error),
      );
    }
  }

  /** The body, once its signature holds; only a Gitea form is read before: what that forge signs is inside it. */
  private async verify(
    req: IncomingMessage,
    heading: Heading,
    received: ReceivedBody,
    verifier: BodyVerifier,
    refuse: Refuse,
  ): Promise<Verified | undefined> {
    const giteaForm = heading.forge === 'gitea' && heading.format === 'form';
    let body = giteaForm ? (received.buffer ?? (await readFile(received.file!))) : undefined;
    const verdict = giteaForm
      ? verifyGiteaForm(req.headers, body!, this.allSecrets)
      : verifier.verify(heading.forge, req.headers);
    if (!verdict.ok)
      return void refuse(401, verdict.wrongSecret ? WRONG_SECRET_ANSWER : 'bad signature', verdict.reason);
    body ??= received.buffer ?? (await readFile(received.file!));
    return { body, verdict };
  }

  private interpret(heading: Heading, body: Buffer, refuse: Refuse): WebhookEvent | undefined {
    try {
      return normaliseEvent(heading.forge, heading.event, parsePayload(body, heading.format));
    } catch (error) {
      if (error instanceof ValidationError) return void refuse(400, 'malformed payload', error.message);
      throw error;
    }
  }

  /** A pull request, checked as a push is (signature, repo, its secret), handed to the preview runner: 202. */
  private async answerPullRequest(
    meaning: PullRequestEvent,
    repo: string,
    res: ServerResponse,
    rlog: Logger,
  ): Promise<void> {
    const configured = this.options.config.repos.get(repo)?.previews !== undefined;
    const previews = this.options.previews;
    if (!configured || !previews) {
      const why = configured
        ? `previews of ${repo} are run by the primary hook-server process only`
        : `${repo} has no previews:`;
      rlog.info('delivery ignored', { repo, pr: meaning.pr, action: meaning.action, reason: why });
      return sendJson(res, 200, { ok: true, ignored: `pull request #${meaning.pr} ${meaning.action}: ${why}` });
    }
    const answer = await previews({ ...meaning, repo });
    rlog.info('pull request', { repo, pr: meaning.pr, action: meaning.action, ...answer });
    if (answer.state === 'ignored')
      return sendJson(res, 200, {
        ok: true,
        ignored: `pull request #${meaning.pr} ${meaning.action}: ${answer.reason}`,
      });
    sendJson(res, 202, {
      ok: true,
      preview: answer.name,
      state: answer.state,
      ...(answer.reason ? { reason: answer.reason } : {}),
    });
  }

  /** The name of the configured repo the event is for, signed with its secret and on its branch; undefined once answered. */
  private repoFor(
    meaning: JobEvent | PullRequestEvent,
    verdict: Verified['verdict'],
    res: ServerResponse,
    rlog: Logger,
    refuse: Refuse,
  ): string | undefined {
    const { config, secrets } = this.options;
    const repo = config.repos.get(meaning.repo);
    if (!repo) return void refuse(404, 'unknown repository', `${meaning.repo} is not in ${config.file}`);
    const listed = secrets.repos.get(repo.name) ?? secrets.fallback ?? [];
    const where = `${secrets.repos.has(repo.name) ? 'its own secret: in' : 'the top-level secret: of'} ${config.file}`;
    const index = listed.findIndex((s) => s.value === verdict.secret);
    if (index === -1)
      return void refuse(401, WRONG_SECRET_ANSWER, `signed with a secret that is not ${repo.name}'s (${where})`);
    const until = listed[index].until;
    if (until !== undefined && Date.now() >= until)
      return void refuse(
        401,
        WRONG_SECRET_ANSWER,
        `signed with an old secret of ${repo.name} that ended ${new Date(until).toISOString()} (${where})`,
      );
    if (index > 0) {
      // A change-over: whoever still signs with the old secret should be moved to the new one.
      rlog.warn('delivery signed with an old secret', {
        repo: repo.name,
        entry: index + 1,
        until: until && new Date(until).toISOString(),
      });
      this.options.onOldSecret?.(repo.name);
    }
    if (meaning.kind === 'push' && meaning.branch !== repo.branch) {
      rlog.info('push to another branch ignored', { repo: repo.name, branch: meaning.branch });
      return void sendJson(res, 200, { ok: true, ignored: `push to ${meaning.branch} (builds run on ${repo.branch})` });
    }
    return repo.name;
  }
}

/** How hook-server refuses a request: logged with its id (5xx as errors), answered with a short JSON error. */
export function refuserFor(
  log: Logger,
  req: IncomingMessage,
  res: ServerResponse,
  requestId: string,
  route: string,
): Refuse {
  return (status, message, detail, headers = {}) => {
    (status >= 500 ? log.error : log.warn)('request refused', {
      request: requestId,
      status,
      path: route.slice(0, 100),
      reason: detail ?? message,
    });
    // A body nobody will read is not drained: the connection closes after the answer.
    if (!req.complete) stopReading(req, res);
    // A 503 (the queue database away, a full disk) always says when to try again.
    sendJson(
      res,
      status,
      { error: message, request: requestId },
      status === 503 && !headers['Retry-After'] ? { ...headers, 'Retry-After': '10' } : headers,
    );
  };
}

/** The forge a request's path names: `/hooks/github`, `/hooks/gitea`, `/hooks/gitlab`, or `/` (told by its headers). */
export const FORGE_PATHS = new Map<string, Forge | 'detect'>([
  ['/hooks/github', 'github'],
  ['/hooks/gitea', 'gitea'],
  ['/hooks/gitlab', 'gitlab'],
  ['/', 'detect'],
]);

/** The forge to count a delivery under in /metrics. */
export function countedForge(req: IncomingMessage, target: Forge | 'detect'): string {
  return target === 'detect' ? (detectForge(req.headers) ?? 'unknown') : target;
}
