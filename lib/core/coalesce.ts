// One run at a time; callers that come while it runs share the one run after it, so a burst of
// N requests costs at most two runs. Used wherever a write, an activation or a check coalesces.

/** How a call was served: a run started for it, the follow-up queued for it, or one it joined. */
export type Joined = 'started' | 'queued' | 'coalesced';

export class Coalescer<T> {
  private readonly run: () => Promise<T>;
  private current: Promise<T> | undefined;
  private next: Promise<T> | undefined;

  constructor(run: () => Promise<T>) {
    this.run = run;
  }

  /** Run now, or share the one run that follows the current one. */
  call(): Promise<T> {
    return this.request().promise;
  }

  /** As call(), also telling whether this request started, queued or joined a run. */
  request(): { promise: Promise<T>; joined: Joined } {
    if (this.next) return { promise: this.next, joined: 'coalesced' };
    if (!this.current) return { promise: this.start(), joined: 'started' };
    this.next = this.current
      .catch(() => undefined)
      .then(() => {
        this.next = undefined;
        return this.start();
      });
    return { promise: this.next, joined: 'queued' };
  }

  get running(): boolean {
    return this.current !== undefined;
  }

  get queued(): boolean {
    return this.next !== undefined;
  }

  /** Settles when the runs asked for so far have ended (never rejects). */
  pending(): Promise<void> {
    const last = this.next ?? this.current;
    return last
      ? last.then(
          () => undefined,
          () => undefined,
        )
      : Promise.resolve();
  }

  private start(): Promise<T> {
    const current = this.run().finally(() => {
      if (this.current === current) this.current = undefined;
    });
    this.current = current;
    return current;
  }
}
