// The bytes a text-mode signature (`gpg --textmode`) covers, computed as GnuPG's text filter does,
// so launchfit accepts what gpgv accepts: trailing CR, LF and NUL dropped and CR LF put back on
// lines that had an LF.
// The whole story: docs/internals.md.
import { VerificationError } from '../../core/errors.ts';

const CR = 0x0d;
const LF = 0x0a;
const NUL = 0x00;

/** The longest line (without its LF) that gpg signs in full in text mode. */
export const GPG_MAX_TEXT_LINE = 19993;

export interface TextCanonicalizer {
  /** The canonical bytes for the next chunk (CR and NUL bytes that may end a line are held back). */
  push(chunk: Uint8Array): Uint8Array;
}

/** A stateful canonicalizer for a file fed in chunks; `what` names it in the error. */
export function createTextCanonicalizer(what: string): TextCanonicalizer {
  const held = new Uint8Array(GPG_MAX_TEXT_LINE);
  let heldLength = 0;
  let lineLength = 0;
  return {
    push(chunk) {
      const out = new Uint8Array(heldLength + chunk.length * 2);
      let n = 0;
      for (let i = 0; i < chunk.length; i++) {
        const byte = chunk[i];
        if (byte === LF) {
          out[n++] = CR;
          out[n++] = LF;
          heldLength = 0;
          lineLength = 0;
          continue;
        }
        if (++lineLength > GPG_MAX_TEXT_LINE) {
          throw new VerificationError(
            `${what} has a line longer than ${GPG_MAX_TEXT_LINE} bytes, which a text-mode signature does ` +
              `not cover; sign it in binary mode (gpg --detach-sign without --textmode).`,
          );
        }
        if (byte === CR || byte === NUL) {
          held[heldLength++] = byte;
          continue;
        }
        if (heldLength) {
          out.set(held.subarray(0, heldLength), n);
          n += heldLength;
          heldLength = 0;
        }
        out[n++] = byte;
      }
      return out.subarray(0, n);
    },
  };
}

/** The canonical text form of a whole buffer. */
export function canonicalizeText(data: Uint8Array, what: string): Uint8Array {
  return createTextCanonicalizer(what).push(data);
}

/** The canonical text form of a stream; bytes still held at the end are dropped, as gpg does. */
export function canonicalTextStream(what: string): TransformStream<Uint8Array, Uint8Array> {
  const canonicalizer = createTextCanonicalizer(what);
  return new TransformStream({
    transform(chunk, controller) {
      const out = canonicalizer.push(chunk);
      if (out.length) controller.enqueue(out);
    },
  });
}
