// The push guard (push-guard.ts) of several hook-servers on one queue database, in shipkit.pushes:
// a replayed older push is judged against the newest push any node accepted. A delivery's row is
// written only over the version it was judged against (compare and set); a node that lost the
// race judges again, so pushes of one branch taken at once are all kept, in order.
// The whole story: docs/ha.md.
import { existsSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import { Batcher, type Outcome } from '../core/batch.ts';
import { messageOf } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { Queryable } from '../db/connect.ts';
import {
  gitRunner,
  HISTORY,
  judgeDelivery,
  pushStateFile,
  pushStateOf,
  readPushState,
  remember,
  serialByKey,
  type AcceptedPush,
  type Admission,
  type Delivery,
  type PushGuard,
  type RepoPushState,
} from './push-guard.ts';

/** Rounds a delivery may lose to other nodes' writes before it is answered 503 (the forge retries). */
const MAX_ROUNDS = 50;

export interface SharedPushGuardOptions {
  db: Queryable;
  /** The repo's clone on this node (DATA/repos/FOLDER), read for its origin and for ancestry. */
  workDir: (repo: string) => string;
  env?: NodeJS.ProcessEnv;
}

interface Versioned {
  state: RepoPushState;
  /** 0: no row yet. */
  version: number;
}

async function readShared(db: Queryable, repo: string): Promise<Versioned> {
  const { rows } = await db.query('SELECT remote, branches, version FROM shipkit.pushes WHERE repo = $1', [repo]);
  if (rows.length === 0) return { state: { branches: {} }, version: 0 };
  return {
    state: pushStateOf({ remote: rows[0].remote ?? undefined, branches: rows[0].branches }),
    version: Number(rows[0].version),
  };
}

/** Write `state` over `version` (0: only if there is no row yet); false when another node wrote first. */
async function writeShared(db: Queryable, repo: string, state: RepoPushState, version: number): Promise<boolean> {
  const { rowCount } = await db.query(
    `INSERT INTO shipkit.pushes (repo, remote, branches, version) VALUES ($1, $2, $3, 1)
     ON CONFLICT (repo) DO UPDATE SET remote = $2, branches = $3, version = shipkit.pushes.version + 1
     WHERE shipkit.pushes.version = $4`,
    [repo, state.remote ?? null, JSON.stringify(state.branches), version],
  );
  return rowCount === 1;
}

/** Read, change and write back a repo's row until no other node wrote in between; gives what `change` gave. */
async function changeShared<T>(
  db: Queryable,
  repo: string,
  change: (state: RepoPushState) => Promise<{ result: T; write: boolean }>,
): Promise<T> {
  for (let round = 1; ; round++) {
    const { state, version } = await readShared(db, repo);
    const { result, write } = await change(state);
    if (!write || (await writeShared(db, repo, state, version))) return result;
    if (round >= MAX_ROUNDS)
      throw new Error(`the accepted pushes of ${repo} changed ${round} times while this delivery was judged`);
  }
}

export function createSharedPushGuard(options: SharedPushGuardOptions): PushGuard {
  const { db } = options;
  const serial = serialByKey();
  /** Per configured repo: its deliveries, judged a group at a time (judgeGroup). */
  const groups = new Map<string, Batcher<Waiting, Admission>>();

  /** Take an accepted push out again (its job could not be queued), whatever other nodes added since. */
  const forget = (delivery: Delivery, entry: AcceptedPush | undefined, pinned: string | undefined) =>
    changeShared(db, delivery.repo, async (state) => {
      const branch = delivery.push && state.branches[delivery.push.branch];
      const kept = branch?.filter((p) => !(entry && p.sha === entry.sha && p.at === entry.at));
      if (branch && kept && kept.length !== branch.length) state.branches[delivery.push!.branch] = kept;
      const unpin = pinned !== undefined && state.remote === pinned;
      if (unpin) delete state.remote;
      return { result: undefined, write: unpin || kept?.length !== branch?.length };
    });

  /** One delivery judged against `state` (and remembered in it when accepted), as a lone one would be. */
  async function judgeOne(state: RepoPushState, { delivery, now }: Waiting): Promise<Judged> {
    try {
      const judgement = await judgeDelivery(delivery, state, gitRunner(options.workDir(delivery.repo), options.env));
      if (judgement.verdict !== 'accept') return { value: judgement, changed: false };
      const remoteBefore = state.remote;
      const { changed, entry } = remember(state, delivery, now);
      const pinned = remoteBefore === undefined ? state.remote : undefined;
      const undo = changed ? () => forget(delivery, entry, pinned) : async () => {};
      return { value: { verdict: 'accept', changed, undo }, changed };
    } catch (error) {
      return { error, changed: false };
    }
  }

  /**
   * A repo's deliveries that waited together, judged in arrival order against one read of the
   * repo's row, each against what those before it were remembered as, and written back once
   * (compare and set; the whole group again if another node wrote first). Under load a node
   * reads the row once per group rather than once per delivery.
   */
  const judgeGroup = (repo: string, group: Waiting[]): Promise<Judged[]> =>
    serial(repo, () =>
      changeShared(db, repo, async (state) => {
        const each: Judged[] = [];
        for (const item of group) each.push(await judgeOne(state, item));
        return { result: each, write: each.some((j) => j.changed) };
      }),
    );

  return {
    serial,

    admit(delivery: Delivery, now = new Date()): Promise<Admission> {
      let group = groups.get(delivery.repo);
      if (!group) groups.set(delivery.repo, (group = new Batcher((items) => judgeGroup(delivery.repo, items))));
      return group.add({ delivery, now });
    },

    // Written to the database when admitted: nothing is left to write.
    persist: () => Promise.resolve(),
    written: () => Promise.resolve(),
  };
}

interface Waiting {
  delivery: Delivery;
  now: Date;
}

/** A waiting delivery's judgement, or what kept it from one (that delivery alone is answered 503). */
type Judged = Outcome<Admission> & { changed: boolean };

/**
 * At the first start with `queue:`, this node's DATA/pushes/ state of each configured repo is
 * merged into the database's (renamed after, so it is read once): the pushes of both, newest
 * first, and the database's pinned remote where both have one. A failure is logged; the files
 * stay and are tried again at the next start.
 */
export async function adoptPushFiles(db: Queryable, dataDir: string, repos: string[], log: Logger): Promise<void> {
  for (const repo of repos) {
    const file = pushStateFile(dataDir, repo);
    if (!existsSync(file)) continue;
    try {
      const local = await readPushState(file);
      const conflict = await changeShared(db, repo, async (state) => {
        const differs = state.remote !== undefined && local.remote !== undefined && state.remote !== local.remote;
        state.remote ??= local.remote;
        for (const [branch, pushes] of Object.entries(local.branches))
          state.branches[branch] = mergePushes(state.branches[branch] ?? [], pushes);
        return { result: differs, write: true };
      });
      await rename(file, `${file}.copied-to-queue`);
      log.info(`the accepted pushes of ${repo} in ${file} were copied into the queue database`);
      if (conflict)
        log.warn(
          `${file} pinned another remote for ${repo} than the queue database has; the database's stands ` +
            `(set url: in shipkit.yml to choose)`,
        );
    } catch (error) {
      log.warn(`could not copy ${file} into the queue database; tried again at the next start`, {
        error: messageOf(error),
      });
    }
  }
}

/** Two histories of one branch as one: each commit once (the database's record of it first), newest acceptance first. */
function mergePushes(ours: AcceptedPush[], theirs: AcceptedPush[]): AcceptedPush[] {
  const bySha = new Map<string, AcceptedPush>();
  for (const push of [...ours, ...theirs]) if (!bySha.has(push.sha)) bySha.set(push.sha, push);
  return [...bySha.values()].sort((a, b) => Date.parse(b.at) - Date.parse(a.at)).slice(0, HISTORY);
}
