// Secret values never reach a log: every form a build might print them in (as they are,
// URL-encoded, base64 at any of its three alignments) becomes `***`. Output arrives in chunks
// that may cut a secret anywhere, so the stream masker holds back the end of a chunk while it
// could still be the start of a secret, and decides when the next chunk (or the end) comes.

export const MASK = '***';

// Shorter encoded fragments would match ordinary text too often (a base64 slice of 3 chars).
const MIN_ENCODED_LENGTH = 6;
// Overlapping matches at a chunk's end are held back whole only up to this size.
const MAX_CARRY = 64 * 1024;

/** The forms of `secret` to mask: the value, its URL encodings and its base64 (3 alignments, both alphabets). */
export function secretForms(secret: string): string[] {
  if (!secret) return [];
  const forms = new Set<string>([secret]);
  const encoded = [
    ...urlForms(secret).flatMap((form) => [form, form.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase())]),
    ...base64Forms(Buffer.from(secret, 'utf8')),
  ];
  for (const form of encoded) if (form.length >= MIN_ENCODED_LENGTH) forms.add(form);
  return [...forms];
}

/**
 * How common encoders write `secret` in a URL: JavaScript's encodeURIComponent and
 * URLSearchParams; RFC 3986 strict (curl --data-urlencode, Python quote(s, safe='')), with `/`
 * kept (Python quote), with `+` for a space (Python quote_plus, Go url.QueryEscape).
 */
function urlForms(secret: string): string[] {
  const strict = encodeURIComponent(secret).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return [
    encodeURIComponent(secret),
    new URLSearchParams({ s: secret }).toString().slice(2),
    strict,
    strict.replace(/%2F/g, '/'),
    strict.replace(/%20/g, '+'),
  ];
}

/**
 * The base64 characters that depend only on the secret's bytes, for each of the 3 positions the
 * secret can start at within a 3-byte group: the first characters mix in the bytes before it,
 * the last ones the bytes after it, so both are left out.
 */
function base64Forms(bytes: Buffer): string[] {
  const forms: string[] = [];
  for (const offset of [0, 1, 2]) {
    const text = Buffer.concat([Buffer.alloc(offset), bytes])
      .toString('base64')
      .replace(/=+$/, '');
    const skip = [0, 2, 3][offset];
    const whole = Math.floor(((offset + bytes.length) * 8) / 6);
    const form = text.slice(skip, whole);
    forms.push(form, form.replace(/\+/g, '-').replace(/\//g, '_'));
  }
  return forms;
}

/** A masker over whole texts (a log line, an error message): every form of every secret. */
export function createTextMasker(secrets: readonly string[]): (text: string) => string {
  const masker = new StreamMasker(secrets);
  if (!masker.active) return (text) => text;
  return (text) => masker.maskWhole(Buffer.from(text, 'utf8')).toString('utf8');
}

/**
 * Masks a byte stream cut into arbitrary chunks. `write` returns what can be released now;
 * `end` returns the rest. A secret split across any number of chunks is masked whole.
 */
export class StreamMasker {
  private readonly forms: Buffer[];
  private readonly mask = Buffer.from(MASK);
  private carry: Buffer = Buffer.alloc(0);

  constructor(secrets: readonly string[]) {
    this.forms = [...new Set(secrets.flatMap(secretForms))]
      .map((form) => Buffer.from(form, 'utf8'))
      .sort((a, b) => b.length - a.length);
  }

  get active(): boolean {
    return this.forms.length > 0;
  }

  write(chunk: Buffer): Buffer {
    if (!this.forms.length) return chunk;
    const data = this.carry.length ? Buffer.concat([this.carry, chunk]) : chunk;
    const { out, rest } = this.replace(data, false);
    this.carry = rest;
    return out;
  }

  end(): Buffer {
    if (!this.carry.length) return Buffer.alloc(0);
    const { out } = this.replace(this.carry, true);
    this.carry = Buffer.alloc(0);
    return out;
  }

  /** `data` with every form masked, as a whole (the stream's state is not touched). */
  maskWhole(data: Buffer): Buffer {
    return this.forms.length ? this.replace(data, true).out : data;
  }

  /**
   * Masks every match; overlapping matches (of two secrets, or two forms) are masked as one
   * run. Unless `final`, keeps back the tail that could still become (part of) a match.
   */
  private replace(data: Buffer, final: boolean): { out: Buffer; rest: Buffer } {
    const ranges = this.matchRanges(data);
    let boundary = final ? data.length : data.length - this.partialMatchAtEnd(data);
    const last = ranges[ranges.length - 1];
    // A match that reaches into the kept tail may grow with the next chunk: keep it whole, within reason.
    if (!final && last && last.end > boundary && data.length - last.start <= MAX_CARRY) boundary = last.start;
    const parts: Buffer[] = [];
    let position = 0;
    for (const { start, end } of ranges) {
      if (start >= boundary) break;
      parts.push(data.subarray(position, start), this.mask);
      position = end;
    }
    boundary = Math.max(boundary, position);
    parts.push(data.subarray(position, boundary));
    return { out: Buffer.concat(parts), rest: Buffer.from(data.subarray(boundary)) };
  }

  /** Every occurrence of every form, merged into sorted, non-overlapping [start, end) runs. */
  private matchRanges(data: Buffer): Array<{ start: number; end: number }> {
    const found: Array<{ start: number; end: number }> = [];
    for (const form of this.forms) {
      for (let index = data.indexOf(form); index !== -1; index = data.indexOf(form, index + 1))
        found.push({ start: index, end: index + form.length });
    }
    found.sort((a, b) => a.start - b.start);
    const merged: Array<{ start: number; end: number }> = [];
    for (const range of found) {
      const previous = merged[merged.length - 1];
      if (previous && range.start < previous.end) previous.end = Math.max(previous.end, range.end);
      else merged.push({ ...range });
    }
    return merged;
  }

  /** How many bytes at the end of `data` are the beginning (not the whole) of some form. */
  private partialMatchAtEnd(data: Buffer): number {
    let longest = 0;
    for (const form of this.forms) {
      const max = Math.min(form.length - 1, data.length);
      for (let size = max; size > longest; size--) {
        if (data.compare(form, 0, size, data.length - size, data.length) === 0) {
          longest = size;
          break;
        }
      }
    }
    return longest;
  }
}
