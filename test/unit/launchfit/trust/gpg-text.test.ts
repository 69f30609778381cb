// The bytes a text-mode signature covers (lib/launchfit/trust/gpg-text.ts), as GnuPG's text filter
// makes them: line ends become CR LF, trailing CR and NUL bytes of a line go, those inside stay;
// fed in chunks it gives the same bytes whatever the cuts; an over-long line is refused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { VerificationError } from '../../../../lib/core/errors.ts';
import {
  canonicalizeText,
  canonicalTextStream,
  createTextCanonicalizer,
  GPG_MAX_TEXT_LINE,
} from '../../../../lib/launchfit/trust/gpg-text.ts';

const text = (s: string) => Buffer.from(canonicalizeText(Buffer.from(s, 'latin1'), 'VERSION')).toString('latin1');

test('LF and CR LF both end a line as CR LF; a last line without LF keeps none', () => {
  assert.is(text('a\nb\r\nc'), 'a\r\nb\r\nc');
  assert.is(text('\n\n'), '\r\n\r\n');
  assert.is(text(''), '');
});

test('CR and NUL at a line end are dropped, inside a line they stay', () => {
  assert.is(text('a\r\r\nb\0\nc\r\0\n'), 'a\r\nb\r\nc\r\n');
  assert.is(text('a\rb\0c\n'), 'a\rb\0c\r\n');
  assert.is(text('end\r\0'), 'end', 'held bytes at the very end are dropped');
  assert.is(text('trailing spaces stay  \t\n'), 'trailing spaces stay  \t\r\n');
});

test('chunked in every way, the result is the same as at once', () => {
  const input = Buffer.from('CURRENT 1.2 app.tar.gz\r\nSHA256 ab\0\r\n\r\nSEQ 3\rx\n', 'latin1');
  const whole = Buffer.from(canonicalizeText(input, 'VERSION'));
  for (let cut = 0; cut <= input.length; cut++) {
    for (let cut2 = cut; cut2 <= input.length; cut2 += 3) {
      const c = createTextCanonicalizer('VERSION');
      const parts = [input.subarray(0, cut), input.subarray(cut, cut2), input.subarray(cut2)].map((p) => c.push(p));
      assert.equal(Buffer.concat(parts), whole, `cut at ${cut}, ${cut2}`);
    }
  }
});

test('the stream form gives the same bytes', async () => {
  const input = Buffer.from('one\r\ntwo\n\0three\r', 'latin1');
  const out: Uint8Array[] = [];
  const stream = new Blob([input.subarray(0, 5), input.subarray(5)]).stream().pipeThrough(canonicalTextStream('x'));
  const reader = stream.getReader();
  for (let r = await reader.read(); !r.done; r = await reader.read()) out.push(r.value);
  assert.equal(Buffer.concat(out), Buffer.from(canonicalizeText(input, 'x')));
});

test('a line longer than gpg signs in text mode is refused, naming the file', () => {
  assert.not.throws(() => canonicalizeText(Buffer.alloc(GPG_MAX_TEXT_LINE, 0x61), 'VERSION'));
  assert.throws(
    () => canonicalizeText(Buffer.alloc(GPG_MAX_TEXT_LINE + 1, 0x61), 'release.tar.gz'),
    (e: unknown) => e instanceof VerificationError && /release\.tar\.gz has a line longer than 19993/.test(String(e)),
  );
});

test.run();
