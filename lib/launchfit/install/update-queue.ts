// The order of work in `launchfit run` (lib/launchfit/launcher.ts): one update or rollback at a
// time, in order. Check requests that arrive while a check is waiting to start join it; once it
// has started, they queue one more (coalescing), so a burst of requests costs at most two checks.
// A check's verdict can come before its end: an overlapping switch knows the new release is
// healthy and serving while the old instance still drains (update.ts activateRelease).
import type { CheckResult } from './context.ts';

/** Gives a check's verdict before the check has ended; the first call counts. */
export type VerdictFn = (result: CheckResult) => void;

interface Check {
  done: Promise<CheckResult>;
  verdict: Promise<CheckResult>;
}

export class UpdateQueue {
  private readonly runCheck: (force: boolean, verdict: VerdictFn) => Promise<CheckResult>;
  private tail: Promise<unknown> = Promise.resolve();
  private waitingCheck: Check | undefined;
  private waitingForce = false;

  /** `runCheck` does one check; `force` fetches VERSION without the last ETag; `verdict` may tell the result early. */
  constructor(runCheck: (force: boolean, verdict: VerdictFn) => Promise<CheckResult>) {
    this.runCheck = runCheck;
  }

  /** Run `work` once everything queued before it has ended, whether that failed or not. */
  exclusive<T>(work: () => Promise<T>): Promise<T> {
    const next = this.tail.then(work, work);
    this.tail = next.catch(() => {});
    return next;
  }

  /** A check, joined with the one waiting to start if there is one. */
  requestCheck({ force = false }: { force?: boolean } = {}): Promise<CheckResult> {
    return this.join(force).done;
  }

  /**
   * The same check's verdict: its result as soon as it is known (an overlapping switch: once the
   * new release is healthy and serving, before the old instance has drained), else at its end.
   */
  requestVerdict({ force = false }: { force?: boolean } = {}): Promise<CheckResult> {
    return this.join(force).verdict;
  }

  private join(force: boolean): Check {
    // A forced check (asked by the fleet master) makes the waiting check a forced one.
    this.waitingForce ||= force;
    if (this.waitingCheck) return this.waitingCheck;
    let early: VerdictFn = () => {};
    const verdict = new Promise<CheckResult>((resolve) => {
      early = resolve;
    });
    const done = this.exclusive(() => {
      const forced = this.waitingForce;
      this.waitingCheck = undefined;
      this.waitingForce = false;
      return this.runCheck(forced, early);
    });
    const check = { done, verdict: Promise.race([verdict, done]) };
    check.verdict.catch(() => {}); // asked for by some requests only
    this.waitingCheck = check;
    return check;
  }

  /** Settles when the work queued so far has ended (never rejects). */
  idle(): Promise<unknown> {
    return this.tail;
  }
}
