// Group commit's shape, for work whose items each want their own answer: one run at a time over
// everything waiting; what comes while a run runs waits for the next one, so a burst of N items
// costs a few runs, not N. The append log's flush is the same idea with its own extras; perTurn
// is the plainest form: what one turn of the event loop gathered, handed on once.

/** One item's outcome of a run. */
export type Outcome<R> = { value: R } | { error: unknown };

export class Batcher<I, R> {
  private readonly run: (items: I[]) => Promise<Array<Outcome<R>>>;
  private waiting: Array<{ item: I; resolve: (value: R) => void; reject: (error: unknown) => void }> = [];
  private running = false;

  /** `run` gives one outcome per item, in order; if it throws, every item of its run is rejected. */
  constructor(run: (items: I[]) => Promise<Array<Outcome<R>>>) {
    this.run = run;
  }

  /** Settles with this item's outcome, from the run it lands in. */
  add(item: I): Promise<R> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      if (!this.running) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.running = true;
    while (this.waiting.length) {
      const batch = this.waiting;
      this.waiting = [];
      try {
        const outcomes = await this.run(batch.map((w) => w.item));
        outcomes.forEach((o, i) => ('error' in o ? batch[i].reject(o.error) : batch[i].resolve(o.value)));
      } catch (error) {
        for (const w of batch) w.reject(error);
      }
    }
    this.running = false;
  }
}

/**
 * Items gathered until the event loop's current turn is over, then handed on together (one IPC
 * message, one write) instead of one by one; `.flush()` hands on what waits at once.
 */
export function perTurn<T>(handOn: (items: T[]) => void): ((item: T) => void) & { flush(): void } {
  let items: T[] = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (items.length === 0) return;
    const all = items;
    items = [];
    handOn(all);
  };
  const add = (item: T) => {
    items.push(item);
    if (scheduled) return;
    scheduled = true;
    setImmediate(flush);
  };
  return Object.assign(add, { flush });
}
