// Server-sent events (text/event-stream, WHATWG HTML §9.2) as the live log frames them: whole
// lines per event, `id:` = SOURCE:BYTE_OFFSET for Last-Event-ID, writes that wait for a full
// socket to drain.
import type { ServerResponse } from 'node:http';

/** Where a live log's bytes come from: `o` the process output, `s` the build's logs.txt section. */
export type Source = 'o' | 's';

/** Tells the page to drop what it shows: another text follows. */
export const RESET = 'event: reset\ndata: \n\n';

/** The last event of a job's stream: its final state and exit code. */
export function endEvent(job: { state: string; exit: number | null }): string {
  return `event: end\ndata: ${JSON.stringify({ state: job.state, exit: job.exit })}\n\n`;
}

/** The longest piece of a line without a newline sent as one event. */
export const PIECE = 64 * 1024;

/** The part of `buf` up to its last newline, and the rest; a rest over `max` is cut at a character boundary. */
export function cutAtLine(buf: Buffer, max = PIECE): [Buffer, Buffer] {
  const nl = buf.lastIndexOf(0x0a);
  if (nl !== -1) return [buf.subarray(0, nl + 1), buf.subarray(nl + 1)];
  if (buf.length <= max) return [buf.subarray(0, 0), buf];
  let cut = max;
  // Back off continuation bytes (10xxxxxx) so a character is never split.
  while (cut > 0 && (buf[cut] & 0xc0) === 0x80) cut--;
  return [buf.subarray(0, cut), buf.subarray(cut)];
}

/** One SSE message carrying `text`: a `data:` line per line (CR, LF and CRLF all end a line in SSE). */
export function dataEvent(id: string, text: string): string {
  const lines = text.replace(/\r?\n$/, '').split(/\r\n|\r|\n/);
  return `id: ${id}\n${lines.map((l) => `data: ${l}\n`).join('')}\n`;
}

/** `Last-Event-ID` as source and byte offset, or undefined when absent or not ours. */
export function parseEventId(value: string | string[] | undefined): { source: Source; offset: number } | undefined {
  const m = typeof value === 'string' ? /^([os]):(\d{1,15})$/.exec(value.trim()) : null;
  return m ? { source: m[1] as Source, offset: Number(m[2]) } : undefined;
}

/** Resolves on the response's next 'drain' or 'close', or after `ms`. */
export function drained(res: ServerResponse, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    res.on('drain', done);
    res.on('close', done);
  });
}

/** Write, and wait for a full socket to drain; a reader stalled for `stallMs` is cut. False when the response is gone. */
export async function writeDrained(res: ServerResponse, chunk: string, stallMs = 30_000): Promise<boolean> {
  if (res.destroyed) return false;
  if (res.write(chunk)) return true;
  await drained(res, stallMs);
  if (res.destroyed) return false;
  if (res.writableNeedDrain) {
    res.destroy();
    return false;
  }
  return true;
}
