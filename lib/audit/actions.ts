// What a rollout state posted to POST /fleet/rollouts means for the audit trail, told from the
// state it replaces: a start, a step, a halt, a resume, the end, or a rollback; a repeat is none.
import type { AuditAction } from './chain.ts';

/** The parts of a rollout record (lib/release/format/fleet-report.ts) the meaning is read from. */
export interface RolloutPoint {
  version: string;
  step: number;
  state: string;
}

export function rolloutAction(before: RolloutPoint | null | undefined, after: RolloutPoint): AuditAction | undefined {
  const same = before?.version === after.version;
  const repeat = same && before?.state === after.state && before?.step === after.step;
  if (repeat) return undefined;
  if (after.state === 'rolled_back') return 'rollback';
  if (after.state === 'halted') return 'rollout.halt';
  if (after.state === 'done') return 'rollout.done';
  if (!before || !same || before.state === 'done' || before.state === 'rolled_back') return 'rollout.start';
  if (before.state === 'halted') return 'rollout.resume';
  // running ↔ waiting at the same step says nothing new.
  return before.step !== after.step ? 'rollout.step' : undefined;
}
