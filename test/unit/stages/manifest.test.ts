// manifest.txt / cloudinary.txt parsing (lib/stages/manifest.ts): the contract's format, table-driven.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ValidationError } from '../../../lib/core/errors.ts';
import {
  checkEntries,
  parseCloudinary,
  parseManifest,
  parseManifestLine,
  withTag,
} from '../../../lib/stages/manifest.ts';
import { redactUrls } from '../../../lib/core/redact.ts';
import { oldName } from '../../../lib/stages/downloads.ts';

const good: Array<[string, { url: string; tag: string; dest: string } | undefined]> = [
  ['https://example.com/logo.png img/logo.png', { url: 'https://example.com/logo.png', tag: '', dest: 'img/logo.png' }],
  ['http://example.com/a   b c.txt', { url: 'http://example.com/a', tag: '', dest: 'b c.txt' }],
  [
    'https://example.com/a\tdocs/my file (1).pdf',
    { url: 'https://example.com/a', tag: '', dest: 'docs/my file (1).pdf' },
  ],
  ['https://example.com/app.js#3 js/app.js', { url: 'https://example.com/app.js', tag: '3', dest: 'js/app.js' }],
  [
    'https://example.com/app.js#v1.2 js/app.js   ',
    { url: 'https://example.com/app.js', tag: 'v1.2', dest: 'js/app.js' },
  ],
  ['https://example.com/x?a=1&b=2 x.json\r', { url: 'https://example.com/x?a=1&b=2', tag: '', dest: 'x.json' }],
  ['  https://example.com/x x', { url: 'https://example.com/x', tag: '', dest: 'x' }],
  ['https://example.com/x a//b/./c', { url: 'https://example.com/x', tag: '', dest: 'a/b/c' }],
  ['HTTPS://Example.COM/x ünïcødé/名前.txt', { url: 'https://example.com/x', tag: '', dest: 'ünïcødé/名前.txt' }],
  ['', undefined],
  ['   ', undefined],
  ['# https://example.com/x x', undefined],
  ['   # indented comment', undefined],
];

for (const [line, want] of good) {
  test(`parses ${JSON.stringify(line)}`, () => {
    const entry = parseManifestLine(line, 'manifest.txt:1');
    if (want === undefined) return assert.is(entry, undefined);
    assert.ok(entry);
    assert.equal({ url: entry.url, tag: entry.tag, dest: entry.dest }, want);
  });
}

const bad: Array<[string, RegExp]> = [
  ['https://example.com/x', /has no destination/],
  ['https://example.com/x    ', /has no destination/],
  ['https://example.com/x ../etc/passwd', /must not contain "\.\."/],
  ['https://example.com/x a/../../b', /must not contain "\.\."/],
  ['https://example.com/x /etc/passwd', /must be relative/],
  ['https://example.com/x C:/x', /must be relative/],
  ['https://example.com/x img/', /is a folder; add the file name/],
  ['https://example.com/x .', /leaves the downloads folder|is empty/],
  ['https://example.com/x old/a.png', /keeps for itself/],
  ['https://example.com/x .downloads.json', /keeps for itself/],
  ['file:///etc/passwd x', /"file:" URLs are not allowed/],
  ['ftp://example.com/x x', /"ftp:" URLs are not allowed/],
  ['FTP://example.com/x x', /"ftp:" URLs are not allowed/],
  ['javascript:alert(1) x', /"javascript:" URLs are not allowed/],
  ['data:text/plain,hi x', /"data:" URLs are not allowed/],
  ['example.com/x x', /not a URL/],
  ['//example.com/x x', /not a URL/],
  ['http://[bad x', /not a valid URL/],
  [`https://example.com/x ${'a'.repeat(9000)}`, /longer than 8192/],
  ['https://example.com/x a\x01b', /control characters/],
];

for (const [line, pattern] of bad) {
  test(`refuses ${JSON.stringify(line.slice(0, 50))}`, () => {
    try {
      parseManifestLine(line, 'manifest.txt:7');
      assert.unreachable('should have thrown');
    } catch (error) {
      assert.instance(error, ValidationError);
      assert.match((error as Error).message, /^manifest\.txt:7: /);
      assert.match((error as Error).message, pattern);
    }
  });
}

test('parseManifest reports every bad line with its number', () => {
  const text = 'https://a.example/1 one\n\nftp://x/y two\n# fine\nhttps://a.example/3\nhttps://a.example/4 four\n';
  try {
    parseManifest(text);
    assert.unreachable();
  } catch (error) {
    const message = (error as Error).message;
    assert.match(message, /manifest\.txt:3: .*ftp/);
    assert.match(message, /manifest\.txt:5: .*no destination/);
    assert.not.match(message, /manifest\.txt:1:/);
  }
});

test('parseManifest handles a BOM, CRLF and a missing final newline', () => {
  const entries = parseManifest('\uFEFFhttps://a.example/1 one\r\nhttps://a.example/2 two', { source: 'stdin' });
  assert.equal(
    entries.map((e) => [e.dest, e.where]),
    [
      ['one', 'stdin:1'],
      ['two', 'stdin:2'],
    ],
  );
});

test('the same destination twice with different URLs names both lines', () => {
  const entries = parseManifest(
    'https://a.example/1 img/x.png\nhttps://a.example/2 other\nhttps://a.example/3 img//x.png\n',
  );
  try {
    checkEntries(entries);
    assert.unreachable();
  } catch (error) {
    assert.instance(error, ValidationError);
    assert.match(
      (error as Error).message,
      /manifest\.txt:3: destination "img\/x\.png" is already used by manifest\.txt:1/,
    );
  }
});

test('the same destination with the same URL is kept once; a different tag is a conflict', () => {
  const same = checkEntries(parseManifest('https://a.example/1 x\nhttps://a.example/1 x\n'));
  assert.is(same.length, 1);
  assert.throws(
    () => checkEntries(parseManifest('https://a.example/1#1 x\nhttps://a.example/1#2 x\n')),
    /manifest\.txt:2: .*manifest\.txt:1/,
  );
});

test('a destination used as both file and folder is refused', () => {
  assert.throws(
    () => checkEntries(parseManifest('https://a.example/1 img\nhttps://a.example/2 img/x.png\n')),
    /needs "img" as a folder, but manifest\.txt:1/,
  );
});

test('a 10,000-line manifest parses whole', () => {
  const lines = Array.from(
    { length: 10_000 },
    (_, i) => `https://cdn.example.com/f/${i}.bin#${i % 7} data/${i % 100}/file ${i}.bin`,
  );
  const entries = checkEntries(parseManifest(lines.join('\n')));
  assert.is(entries.length, 10_000);
  assert.is(entries[9999].dest, 'data/99/file 9999.bin');
});

test('cloudinary.txt expands to res.cloudinary.com URLs', () => {
  const text =
    '# images\ncloud demo-cloud\nsamples/dog w_300,c_fill img/dog small.jpg\nsample.jpg#2 - img/sample.jpg\nsamples/cat w_100/e_sepia cat.jpg\n';
  const entries = parseCloudinary(text);
  assert.equal(
    entries.map((e) => [e.url, e.tag, e.dest, e.where]),
    [
      [
        'https://res.cloudinary.com/demo-cloud/image/upload/w_300,c_fill/samples/dog',
        '',
        'img/dog small.jpg',
        'cloudinary.txt:3',
      ],
      ['https://res.cloudinary.com/demo-cloud/image/upload/sample.jpg', '2', 'img/sample.jpg', 'cloudinary.txt:4'],
      [
        'https://res.cloudinary.com/demo-cloud/image/upload/w_100/e_sepia/samples/cat',
        '',
        'cat.jpg',
        'cloudinary.txt:5',
      ],
    ],
  );
});

const badCloudinary: Array<[string, RegExp]> = [
  ['samples/dog w_300 dog.jpg\n', /first line must be "cloud NAME"/],
  ['cloud bad/name\n', /first line must be "cloud NAME"/],
  ['cloud demo\nsamples/dog dog.jpg\n', /cloudinary\.txt:2: write "PUBLIC_ID TRANSFORMATION DEST"/],
  ['cloud demo\n../x w_1 x.jpg\n', /invalid Cloudinary public ID/],
  ['cloud demo\nx?y=1 w_1 x.jpg\n', /invalid Cloudinary public ID/],
  ['cloud demo\nx w_1 ../../x.jpg\n', /must not contain "\.\."/],
  ['cloud demo\nx w_1/../.. x.jpg\n', /invalid Cloudinary transformation/],
];

for (const [text, pattern] of badCloudinary) {
  test(`cloudinary.txt refuses ${JSON.stringify(text)}`, () => {
    assert.throws(
      () => parseCloudinary(text),
      (error: Error) => error instanceof ValidationError && pattern.test(error.message),
    );
  });
}

test('manifest and cloudinary entries share one destination space', () => {
  const entries = [
    ...parseManifest('https://a.example/1 img/dog.jpg\n'),
    ...parseCloudinary('cloud demo\nsamples/dog w_1 img/dog.jpg\n'),
  ];
  assert.throws(() => checkEntries(entries), /cloudinary\.txt:2: .*manifest\.txt:1/);
});

test('old/ names keep the previous tag', () => {
  assert.is(oldName('img/logo.png', '2'), 'old/img/logo@2.png');
  assert.is(oldName('jquery.min.js', 'v3/x'), 'old/jquery@v3_x.min.js');
  assert.is(oldName('README', ''), 'old/README@untagged');
  assert.is(oldName('.hidden.cfg', '1'), 'old/.hidden@1.cfg');
});

test('helpers: withTag and redactUrls', () => {
  assert.is(withTag({ url: 'https://a.example/x', tag: '3' }), 'https://a.example/x#3');
  assert.is(redactUrls('https://user:pw@a.example/x'), 'https://***@a.example/x');
});

test.run();
