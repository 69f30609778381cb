// Synchronous file work in slices: many small files read, hashed or listed with the sync calls
// cost a fraction of the async ones (each async call is a round trip through libuv's threads:
// on a 2-core VM a folder of 2,805 small files hashed in 1.4 s async, 0.13 s sync), and the
// event loop still gets a turn every few ms, so a supervisor's probes and control socket answer.
import { setImmediate as nextTurn } from 'node:timers/promises';

/** Returns `pause`: awaited between two pieces of synchronous work, it yields once `sliceMs` of it has run. */
export function workSlices(sliceMs = 8): () => Promise<void> | undefined {
  let since = performance.now();
  return () => {
    if (performance.now() - since < sliceMs) return undefined;
    return nextTurn().then(() => {
      since = performance.now();
    });
  };
}
