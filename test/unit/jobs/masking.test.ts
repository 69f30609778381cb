// lib/jobs/masking.ts: secrets masked in every form, however the output is cut into chunks.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createTextMasker, secretForms, StreamMasker } from '../../../lib/jobs/masking.ts';

const SECRET = 'p@ss w0rd/+=ü-42';
// Begins with the end of SECRET, so the two can overlap.
const OTHER = '-42_tok_9f8e7d6c5b';

function streamed(secrets: string[], pieces: Buffer[]): string {
  const masker = new StreamMasker(secrets);
  return Buffer.concat([...pieces.map((piece) => masker.write(piece)), masker.end()]).toString('utf8');
}

function everyForm(text: string, secrets: string[]): string[] {
  return secrets.flatMap(secretForms).filter((form) => text.includes(form));
}

const b64 = (text: string) => Buffer.from(text).toString('base64');
const SAMPLE = [
  `plain ${SECRET} and again ${SECRET}${SECRET}\n`,
  `url ${encodeURIComponent(SECRET)} form ${new URLSearchParams({ k: SECRET })}\n`,
  `b64 ${b64(SECRET)} ${b64(`x${SECRET}`)} ${b64(`xy${SECRET}y`)} ${b64(`{"key":"${SECRET}"}`)}\n`,
  `other ${OTHER} overlapping ${SECRET}${OTHER.slice(3)}\n`,
].join('');

test('secretForms: the value, its URL encodings and base64 at 3 alignments', () => {
  const forms = secretForms(SECRET);
  assert.ok(forms.includes(SECRET));
  assert.ok(forms.includes(encodeURIComponent(SECRET)));
  for (const prefix of ['', 'a', 'ab']) {
    for (const suffix of ['', 'z', 'zz']) {
      const encoded = b64(`${prefix}${SECRET}${suffix}`);
      assert.ok(
        forms.some((form) => encoded.includes(form) && form.length >= 16),
        `base64 of ${prefix}SECRET${suffix}`,
      );
    }
  }
  assert.equal(secretForms(''), []);
});

test('createTextMasker: the URL encodings of common encoders (curl --data-urlencode, Python quote and quote_plus, Go QueryEscape) are masked too', () => {
  // Outputs taken from those encoders for this value: RFC 3986 strict (!'()* encoded), with / kept, with + for space.
  const secret = "wJalr/XUtn!FEMI(K7)*'x y";
  const mask = createTextMasker([secret]);
  for (const encoded of [
    'wJalr%2FXUtn%21FEMI%28K7%29%2A%27x%20y', // curl --data-urlencode, Python quote(s, safe='')
    'wJalr/XUtn%21FEMI%28K7%29%2A%27x%20y', // Python quote(s)
    'wJalr%2FXUtn%21FEMI%28K7%29%2A%27x+y', // Python quote_plus, Go url.QueryEscape
    'wJalr%2fXUtn%21FEMI%28K7%29%2a%27x%20y', // lower-case hex
  ])
    assert.is(mask(`url ${encoded}\n`), 'url ***\n', encoded);
});

test('createTextMasker: every form in a text becomes ***', () => {
  const mask = createTextMasker([SECRET, OTHER]);
  const masked = mask(SAMPLE);
  assert.equal(everyForm(masked, [SECRET, OTHER]), []);
  assert.match(masked, /^plain \*\*\* and again \*\*\*\*\*\*\n/);
  assert.match(masked, /other \*\*\* overlapping \*\*\*\n$/);
  assert.equal(createTextMasker([])(SAMPLE), SAMPLE);
});

test('StreamMasker: split into two chunks at every offset, the output is the whole text masked', () => {
  const data = Buffer.from(SAMPLE);
  const whole = createTextMasker([SECRET, OTHER])(SAMPLE);
  for (let cut = 0; cut <= data.length; cut++) {
    const out = streamed([SECRET, OTHER], [data.subarray(0, cut), data.subarray(cut)]);
    assert.equal(out, whole, `cut at byte ${cut}`);
  }
});

test('StreamMasker: split into three chunks at every pair of offsets inside a secret, and byte by byte', () => {
  const text = `a${SECRET}b${b64(`q${SECRET}`)}c`;
  const data = Buffer.from(text);
  const whole = createTextMasker([SECRET])(text);
  assert.equal(everyForm(whole, [SECRET]), []);
  for (let i = 0; i <= data.length; i++) {
    for (let j = i; j <= data.length; j++) {
      assert.equal(
        streamed([SECRET], [data.subarray(0, i), data.subarray(i, j), data.subarray(j)]),
        whole,
        `cuts at ${i} and ${j}`,
      );
    }
  }
  assert.equal(
    streamed(
      [SECRET],
      [...data].map((byte) => Buffer.from([byte])),
    ),
    whole,
  );
});

test('StreamMasker: holds back only what could begin a secret, and releases it at the end', () => {
  const masker = new StreamMasker(['abcdef']);
  assert.equal(masker.write(Buffer.from('xxabc')).toString(), 'xx');
  assert.equal(masker.write(Buffer.from('dxx')).toString(), 'abcdxx');
  assert.equal(masker.write(Buffer.from('ab')).toString(), '');
  assert.equal(masker.end().toString(), 'ab');
  const none = new StreamMasker([]);
  assert.not.ok(none.active);
  assert.equal(none.write(Buffer.from('abc')).toString(), 'abc');
});

test('StreamMasker: a repeated pattern is masked as one run, and the carry stays bounded', () => {
  const masker = new StreamMasker(['aaaaaaaa']);
  let out = '';
  for (let i = 0; i < 40; i++) out += masker.write(Buffer.alloc(4096, 'a')).toString();
  assert.ok(out.length > 0, 'output is released before the end');
  out += masker.end().toString();
  assert.not.match(out, /a/);
});

test.run();
