// lib/core/redact.ts: the one URL-credential redaction, table-tested.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { redactUrls } from '../../../lib/core/redact.ts';

// [what, input, expected]
const cases: Array<[string, string, string]> = [
  ['user:pass@', 'https://user:pass@example.com/o/r.git', 'https://***@example.com/o/r.git'],
  ['token@', 'https://ghp_abc123@github.com/o/r.git', 'https://***@github.com/o/r.git'],
  ['no path', 'https://user:pw@example.com', 'https://***@example.com'],
  ['port', 'http://u:p@127.0.0.1:8080/x', 'http://***@127.0.0.1:8080/x'],
  [
    'in the middle of text',
    "fatal: unable to access 'https://u:s3cret@git.example/x/': 403",
    "fatal: unable to access 'https://***@git.example/x/': 403",
  ],
  [
    'several in one line',
    'ssh://deploy@host/x and https://x@y/z, rsync://a:b@c/d',
    'ssh://***@host/x and https://***@y/z, rsync://***@c/d',
  ],
  ['a password holding @', 'https://user:p@ss@example.com/x', 'https://***@example.com/x'],
  ['an encoded @ in the password', 'https://user:p%40ss@example.com/x', 'https://***@example.com/x'],
  ['upper-case scheme', 'HTTPS://U:P@EXAMPLE.COM/', 'HTTPS://***@EXAMPLE.COM/'],
  ['git+ scheme', 'git+https://tok@host/r.git#gh-pages', 'git+https://***@host/r.git#gh-pages'],
  ['s3 with keys', 's3://AKIA:secret@bucket/prefix', 's3://***@bucket/prefix'],
  ['scp-style git@host: holds no secret', 'git clone git@github.com:o/r.git', 'git clone git@github.com:o/r.git'],
  [
    'rsync user@host:path holds no secret',
    'rsync -a out/ deploy@web1:/var/www/site/',
    'rsync -a out/ deploy@web1:/var/www/site/',
  ],
  [
    '@ in the path is not a credential',
    'https://registry.npmjs.org/@scope/pkg',
    'https://registry.npmjs.org/@scope/pkg',
  ],
  ['@ in the query is not a credential', 'https://example.com/?mail=a@b.c', 'https://example.com/?mail=a@b.c'],
  ['@ after the fragment mark', 'https://example.com#x@y', 'https://example.com#x@y'],
  [
    'an e-mail address next to a URL',
    'see https://example.com or mail ops@example.com',
    'see https://example.com or mail ops@example.com',
  ],
  ['no URL at all', 'npm ERR! code E404', 'npm ERR! code E404'],
  ['empty', '', ''],
];

for (const [what, input, expected] of cases) {
  test(`redactUrls: ${what}`, () => {
    assert.is(redactUrls(input), expected);
  });
}

test('redactUrls never lets a secret through, whatever surrounds it', () => {
  for (const around of ['', ' ', '"', "'", '(', '<', 'x=']) {
    const out = redactUrls(`${around}https://bob:hunter2@h/p${around}`);
    assert.not.match(out, /hunter2|bob/, out);
  }
});

test.run();
