// Bounded concurrency: the one worker pool that fan-outs, downloads and S3 syncs share.

/**
 * `fn` over `items` with at most `limit` calls in flight; results in the order of `items`.
 * After the first error no new item is started; the running ones finish, then it is thrown.
 */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  let failed: { error: unknown } | undefined;
  const worker = async () => {
    while (!failed && next < items.length) {
      const index = next++;
      try {
        results[index] = await fn(items[index], index);
      } catch (error) {
        failed ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failed) throw failed.error;
  return results;
}

/**
 * A gate that lets at most `limit` calls of `run` proceed at once; the rest wait in arrival order.
 * For work that arrives over time (requests), where mapLimit needs the whole list up front.
 */
/** Runs at most `limit` functions at once; the rest wait their turn in order. */
export interface Limiter {
  run<R>(fn: () => Promise<R>): Promise<R>;
  readonly active: number;
  readonly waiting: number;
}

export function createLimiter(limit: number): Limiter {
  let active = 0;
  const waiting: Array<() => void> = [];
  async function run<R>(fn: () => Promise<R>): Promise<R> {
    if (active >= limit) await new Promise<void>((resolve) => waiting.push(resolve));
    else active++;
    try {
      return await fn();
    } finally {
      const next = waiting.shift();
      if (next)
        next(); // the slot passes straight to the next caller
      else active--;
    }
  }
  return {
    run,
    get active() {
      return active;
    },
    get waiting() {
      return waiting.length;
    },
  };
}
