// At most N bytes of a fetch answer's body, then hang up: the rest is never read, so a 10 MB
// answer from a receiver we do not trust costs N bytes. Shared by the notify/commit-status POST
// (lib/notify/deliver.ts) and the control client's fetch path (lib/http/control-client.ts).
// lib/launchfit/update-server/requests.ts's fetchSmall is not one of them: it refuses an answer over its cap, and
// reads through openGet's stall timeouts.
import { Buffer } from 'node:buffer';

/** The first `maxBytes` bytes of `body` (fewer if it ends sooner); the stream is cancelled past them. */
export async function readAtMost(body: ReadableStream<Uint8Array> | null, maxBytes: number): Promise<Buffer> {
  if (!body) return Buffer.alloc(0);
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let ended = false;
  try {
    while (size < maxBytes) {
      const { done, value } = await reader.read();
      if (done) {
        ended = true;
        break;
      }
      chunks.push(value);
      size += value.byteLength;
    }
  } finally {
    if (!ended) await reader.cancel().catch(() => {});
  }
  const all = Buffer.concat(chunks);
  return all.byteLength > maxBytes ? all.subarray(0, maxBytes) : all;
}
