// One webhook delivery, from its headers to 202 {"job":ID}: the forge and event named, the body
// refused unsigned before a byte is read, received under its cap (spooled to disk past 256 KB)
// while its HMAC is computed, verified in constant time before it is parsed, normalised
// (lib/server/webhooks.ts), held against shipkit.yml and the push guard, and only then queued.
// Every refusal is a fixed short answer with the request id; the details go to the log.
import { readFile, rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ValidationError, messageOf } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { HttpError, receiveBody, sendJson, type ReceivedBody } from '../http/server.ts';
import type { EnqueueResult, JobQueue, NewJob, RawDelivery } from '../jobs/job-queue.ts';
import type { RepoConfig, ShipkitConfig } from '../config/shipkit-yml.ts';
import type { Refuse } from '../web/read-sources.ts';
import type { Admission, PushGuard } from './push-guard.ts';
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
import { type WebhookEvent } from './forges/payload.ts';
import type { ListedSecret } from '../config/webhook-secret.ts';

/** Bodies larger than this are spooled to DATA/tmp while they stream in, so a flood stays out of memory. */
const SPILL_AT = 256 * 1024;

/** Each list holds the current secret first, then the old ones of a change-over. */
export interface Secrets {
  /** The top-level `secret:`, resolved. */
  fallback?: ListedSecret[];
  /** Per-repo `secret:` values, resolved. */
  repos: Map<string, ListedSecret[]>;
}

export interface DeliveryOptions {
  config: ShipkitConfig;
  secrets: Secrets;
  queue: JobQueue;
  guard: PushGuard;
  log: Logger;
  maxBody: number;
  bodyTimeoutMs: number;
  /** DATA/tmp: where large bodies are spooled. */
  tmpDir: string;
  /** Told when a delivery for `repo` was signed with an old secret of a change-over. */
  onOldSecret?: (repo: string) => void;
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

type Job = WebhookEvent & { kind: 'push' | 'release' };

/** Where a delivery came from: its forge, its id there, and the delivery as it came. */
interface Origin {
  forge: Forge;
  delivery: string;
  raw: RawDelivery;
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
      const raw = { event: heading.event, format: heading.format, body: verified.body };
      if (repo) await this.admitAndQueue(res, repo, meaning, { forge: heading.forge, delivery, raw }, rlog, refuse);
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

  /** The configured repo the event is for, signed with that repo's secret and on its branch; undefined once answered. */
  private repoFor(
    meaning: Job,
    verdict: Verified['verdict'],
    res: ServerResponse,
    rlog: Logger,
    refuse: Refuse,
  ): RepoConfig | undefined {
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
    return repo;
  }

  /** A replayed older push, or another clone URL than the pinned one, is refused (lib/server/push-guard.ts); the rest is queued. */
  private async admitAndQueue(
    res: ServerResponse,
    repo: RepoConfig,
    meaning: Job,
    from: Origin,
    rlog: Logger,
    refuse: Refuse,
  ): Promise<void> {
    const { guard } = this.options;
    const unclonable = this.cloneProblem(repo, meaning.cloneUrl);
    if (unclonable) return refuse(400, unclonable.message, unclonable.detail);
    const admitted = {
      repo: repo.name,
      configuredUrl: repo.url,
      cloneUrl: meaning.cloneUrl,
      push: meaning.kind === 'push' ? { branch: meaning.branch, sha: meaning.sha, order: meaning.order } : undefined,
    };
    let admission: Admission;
    try {
      admission = await guard.admit(admitted);
    } catch (error) {
      return refuse(503, 'not accepting jobs now, retry later', `the push guard: ${messageOf(error)}`);
    }
    if (admission.verdict === 'refused') return refuse(400, 'clone URL refused', admission.reason);
    if (admission.verdict === 'superseded') {
      rlog.warn('push older than the last one accepted for its branch: not built', {
        repo: repo.name,
        sha: admitted.push?.sha,
        reason: admission.reason,
      });
      return sendJson(res, 200, { ok: true, state: 'superseded' });
    }
    let result: EnqueueResult;
    try {
      result = await this.enqueue(repo, meaning, from);
    } catch (error) {
      await admission.undo().catch((undoError: unknown) =>
        rlog.warn('could not take the accepted push back; a retry of this delivery is judged a redelivery', {
          error: messageOf(undoError),
        }),
      );
      return refuse(503, 'not accepting jobs now, retry later', messageOf(error));
    }
    // Logged before anything else is awaited: the queue may start the job as soon as its record
    // is on disk, and its "job started" line waits for the next journal write, which cannot
    // finish before this synchronous line. The answer still waits for DATA/pushes below.
    if (result.duplicate) rlog.info('delivery already queued or running', { job: result.job.id });
    else
      rlog.info('job queued', {
        job: result.job.id,
        repo: repo.name,
        kind: result.job.kind,
        sha: result.job.sha ?? undefined,
        tag: result.job.tag ?? undefined,
      });
    // A delivery that changed nothing the guard remembers (the newest push again) writes nothing,
    // but still waits for the write of what it was judged against.
    const written = admission.changed ? guard.persist(repo.name) : guard.written(repo.name);
    await written.catch((error: Error) =>
      rlog.error(
        'could not write the accepted push to DATA/pushes; after a restart a replay of an older one may build',
        { error: error.message },
      ),
    );
    if (result.duplicate) return sendJson(res, 200, { job: result.job.id, duplicate: true, state: result.job.state });
    return sendJson(res, 202, { job: result.job.id });
  }

  /**
   * Why the job would have nothing it may clone: no `url:` and no clone URL in the delivery (the
   * build would guess GitHub's OWNER/NAME, another repository), or a file:/// path inside DATA
   * (another repo's clone, which this repo's secret must not reach); undefined when it has one.
   */
  private cloneProblem(
    repo: RepoConfig,
    cloneUrl: string | undefined,
  ): { message: string; detail: string } | undefined {
    const { config } = this.options;
    if (repo.url) return undefined;
    if (!cloneUrl)
      return {
        message:
          'no clone URL: the delivery names none and shipkit.yml has no url: for this repository; set url: there',
        detail: `${repo.name} has no url: in ${config.file} and the delivery no clone URL`,
      };
    if (!cloneUrl.startsWith('file:')) return undefined;
    let local: string | undefined;
    try {
      local = path.resolve(fileURLToPath(cloneUrl));
    } catch {
      // An encoded slash or a host: not a path git and we would read alike.
    }
    const data = path.resolve(config.data);
    if (local !== undefined && local !== data && !local.startsWith(data + path.sep)) return undefined;
    return {
      message: 'clone URL refused',
      detail: `the delivery's clone URL ${cloneUrl.slice(0, 200)} is ${local === undefined ? 'not a plain local path' : `inside hook-server's data folder ${data}`}`,
    };
  }

  private enqueue(repo: RepoConfig, meaning: Job, origin: Origin): Promise<EnqueueResult> {
    return this.options.queue.enqueue(newJobOf(repo, meaning, origin), origin.raw);
  }
}

/** The job a push or release delivery for `repo` makes (hook-server's intake, and a replay of it). */
export function newJobOf(
  repo: RepoConfig,
  meaning: WebhookEvent & { kind: 'push' | 'release' },
  { forge, delivery }: { forge: string; delivery: string },
): NewJob {
  const common = {
    repo: repo.name,
    ref: meaning.ref,
    cloneUrl: meaning.cloneUrl,
    deliveryId: delivery,
    forge,
    ...meaning.meta,
  };
  // A forced push is someone asking for this commit on purpose: it builds even when nothing changed.
  return meaning.kind === 'push'
    ? {
        ...common,
        kind: 'build',
        sha: meaning.sha,
        branch: meaning.branch,
        ...(meaning.order.forced === true ? { force: true } : {}),
      }
    : { ...common, kind: 'release', tag: meaning.tag };
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
