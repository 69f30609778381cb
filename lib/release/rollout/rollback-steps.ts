// `release rollback APP --to DEST --version V --steps …` (docs/release.md "Rollback in steps"):
// the rollback signs VERSION naming V at the first step's ROLLOUT, then `release rollout` raises it
// step by step, with its waiting, counting and halting. Run again after a kill, it continues.
import type { RollbackOptions, RollbackResult } from './rollback.ts';
import { rollbackPublished } from './rollback.ts';
import { rolloutRelease, type RolloutOptions, type RolloutResult } from './rollout.ts';

export type RollbackStepsOptions = RollbackOptions &
  Omit<RolloutOptions, 'rollback' | 'name' | 'to' | 'key' | 'passphraseFile' | 'keys' | 'log' | 'step'>;

export interface RollbackStepsResult {
  rollback: RollbackResult;
  rollout: RolloutResult;
}

/** The rollback at ROLLOUT steps[0] (its `rollback` ledger entry), then the rollout's steps (theirs). */
export async function rollbackInSteps(opts: RollbackStepsOptions): Promise<RollbackStepsResult> {
  const rollback = await rollbackPublished({ ...opts, rollout: opts.steps[0] });
  opts.print(
    rollback.continued
      ? `${rollback.app} ${rollback.version} is at ${rollback.to} already (SEQ ${rollback.seq}): continuing its steps`
      : `rolled back from ${rollback.from} to ${rollback.version}: VERSION SEQ ${rollback.seq} at ROLLOUT ${opts.steps[0]}`,
  );
  const rollout = await rolloutRelease({ ...opts, rollback: false, expectVersion: rollback.version });
  return { rollback, rollout };
}
