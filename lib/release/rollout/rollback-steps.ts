// `release rollback APP --to DEST --version V --steps …` (docs/release.md "Rollback in steps"):
// the rollback signs VERSION naming V at the first step's ROLLOUT, then `release rollout` raises it
// step by step, with its waiting, counting and halting. Run again after a kill, it continues.
// With --fleet, hook-server is told of the rollback itself, so its audit trail records it.
import type { RollbackOptions, RollbackResult } from './rollback.ts';
import { rollbackPublished } from './rollback.ts';
import { fleetBase } from './fleet-client.ts';
import { postRollout, rolloutRelease, type RolloutOptions, type RolloutResult } from './rollout.ts';

export type RollbackStepsOptions = RollbackOptions &
  Omit<RolloutOptions, 'rollback' | 'name' | 'to' | 'key' | 'passphraseFile' | 'keys' | 'log' | 'step'>;

export interface RollbackStepsResult {
  rollback: RollbackResult;
  rollout: RolloutResult;
}

/** The rollback at ROLLOUT steps[0] (its `rollback` ledger entry), then the rollout's steps (theirs). */
export async function rollbackInSteps(opts: RollbackStepsOptions): Promise<RollbackStepsResult> {
  const rollback = await rollbackPublished({ ...opts, rollout: opts.steps[0] });
  await tellFleetOfRollback(opts, rollback, opts.steps);
  opts.print(
    rollback.continued
      ? `${rollback.app} ${rollback.version} is at ${rollback.to} already (SEQ ${rollback.seq}): continuing its steps`
      : `rolled back from ${rollback.from} to ${rollback.version}: VERSION SEQ ${rollback.seq} at ROLLOUT ${opts.steps[0]}`,
  );
  const rollout = await rolloutRelease({ ...opts, rollback: false, expectVersion: rollback.version });
  return { rollback, rollout };
}

/**
 * Tells hook-server (POST /fleet/rollouts) that `rollback.from` was rolled back, as a halted
 * rollout's --rollback does: its audit trail records a `rollback` and its status page shows it.
 * Nothing when the rollback was already there (a continued run told it before).
 */
export async function tellFleetOfRollback(
  opts: Pick<RolloutOptions, 'fleet' | 'secret' | 'fetch' | 'log'>,
  rollback: RollbackResult,
  steps: number[] = [100],
): Promise<void> {
  if (rollback.continued) return;
  await postRollout(fleetBase(opts.fleet), opts, {
    app: rollback.app,
    version: rollback.from,
    seq: rollback.seq,
    step: 1,
    percent: steps[0],
    steps,
    state: 'rolled_back',
    reason: `release rollback to ${rollback.version} (SEQ ${rollback.seq})${steps.length > 1 ? ` in steps ${steps.join(', ')}` : ''}`,
    at: new Date().toISOString(),
  });
}
