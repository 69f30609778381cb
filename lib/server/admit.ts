// The last step of a delivery's intake, in the process that holds the queue: a verified push or
// release for a configured repo is held against its clone URL and the push guard, then queued.
// It answers with a value, not on the response, so a delivery worker (lib/server/workers.ts)
// can ask for it over IPC and answer its own connection.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { messageOf } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { RepoConfig, ShipkitConfig } from '../config/shipkit-yml.ts';
import type { EnqueueResult, JobQueue, NewJob, RawDelivery } from '../jobs/job-queue.ts';
import type { WebhookEvent } from './forges/payload.ts';
import type { Admission, PushGuard } from './push-guard.ts';

/** A delivery that asks for a job. */
export type JobEvent = WebhookEvent & { kind: 'push' | 'release' };

/** Where a delivery came from: its forge, its id there, its event, and the delivery as it came where the queue keeps it. */
export interface Origin {
  forge: string;
  delivery: string;
  event: string;
  /** With `queue:` (the database keeps each delivery's body); absent for the local journal, which does not. */
  raw?: RawDelivery;
}

/** What the delivery is answered: JSON, or a refusal (logged as such by whoever answers it). */
export type Answer =
  { status: number; json: Record<string, unknown> } | { status: number; refused: string; detail?: string };

export interface AdmitRequest {
  /** A repo of the config, which the delivery was signed for (lib/server/delivery.ts checked). */
  repo: string;
  meaning: JobEvent;
  origin: Origin;
  requestId: string;
}

export type Admit = (request: AdmitRequest) => Promise<Answer>;

export interface AdmitOptions {
  config: ShipkitConfig;
  queue: JobQueue;
  guard: PushGuard;
  log: Logger;
}

/** A replayed older push, or another clone URL than the pinned one, is refused (lib/server/push-guard.ts); the rest is queued. */
export function createAdmitter({ config, queue, guard, log }: AdmitOptions): Admit {
  return async ({ repo: name, meaning, origin, requestId }) => {
    const repo = config.repos.get(name);
    if (!repo) return { status: 404, refused: 'unknown repository', detail: `${name} is not in ${config.file}` };
    const rlog = log.child({
      request: requestId,
      forge: origin.forge,
      event: origin.event.slice(0, 40),
      delivery: origin.delivery,
    });
    const unclonable = cloneProblem(config, repo, meaning.cloneUrl);
    if (unclonable) return { status: 400, refused: unclonable.message, detail: unclonable.detail };
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
      return {
        status: 503,
        refused: 'not accepting jobs now, retry later',
        detail: `the push guard: ${messageOf(error)}`,
      };
    }
    if (admission.verdict === 'refused') return { status: 400, refused: 'clone URL refused', detail: admission.reason };
    if (admission.verdict === 'superseded') {
      rlog.warn('push older than the last one accepted for its branch: not built', {
        repo: repo.name,
        sha: admitted.push?.sha,
        reason: admission.reason,
      });
      return { status: 200, json: { ok: true, state: 'superseded' } };
    }
    let result: EnqueueResult;
    try {
      result = await queue.enqueue(newJobOf(repo, meaning, origin), origin.raw);
    } catch (error) {
      await admission.undo().catch((undoError: unknown) =>
        rlog.warn('could not take the accepted push back; a retry of this delivery is judged a redelivery', {
          error: messageOf(undoError),
        }),
      );
      return { status: 503, refused: 'not accepting jobs now, retry later', detail: messageOf(error) };
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
    if (result.duplicate)
      return { status: 200, json: { job: result.job.id, duplicate: true, state: result.job.state } };
    return { status: 202, json: { job: result.job.id } };
  };
}

/**
 * Why the job would have nothing it may clone: no `url:` and no clone URL in the delivery (the
 * build would guess GitHub's OWNER/NAME, another repository), or a file:/// path inside DATA
 * (another repo's clone, which this repo's secret must not reach); undefined when it has one.
 */
function cloneProblem(
  config: ShipkitConfig,
  repo: RepoConfig,
  cloneUrl: string | undefined,
): { message: string; detail: string } | undefined {
  if (repo.url) return undefined;
  if (!cloneUrl)
    return {
      message: 'no clone URL: the delivery names none and shipkit.yml has no url: for this repository; set url: there',
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
    detail:
      `the delivery's clone URL ${cloneUrl.slice(0, 200)} is ` +
      `${local === undefined ? 'not a plain local path' : `inside hook-server's data folder ${data}`}`,
  };
}

/** The job a push or release delivery for `repo` makes (hook-server's intake, and a replay of it). */
export function newJobOf(
  repo: RepoConfig,
  meaning: JobEvent,
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
