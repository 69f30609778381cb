// Upload target text (lib/stages/upload/targets.ts): the accepted forms, the refusals and their
// messages, s3 settings, and a target's name.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ValidationError } from '../../../../lib/core/errors.ts';
import { parseTarget, targetName } from '../../../../lib/stages/upload/targets.ts';

const targets: Array<[string, Record<string, unknown>]> = [
  ['deploy@web1:/var/www/site/', { kind: 'rsync', user: 'deploy', host: 'web1', path: '/var/www/site/' }],
  ['web1.example.com:site', { kind: 'rsync', host: 'web1.example.com', path: 'site' }],
  ['deploy@[::1]:/srv/my site', { kind: 'rsync', user: 'deploy', host: '[::1]', path: '/srv/my site' }],
  [
    'rsync://deploy@web1:2222/var/www/my%20site/',
    { kind: 'rsync', user: 'deploy', host: 'web1', port: 2222, path: '/var/www/my site/' },
  ],
  ['s3://site', { kind: 's3', bucket: 'site', prefix: '' }],
  ['s3://site/', { kind: 's3', bucket: 'site', prefix: '' }],
  ['s3://site/www', { kind: 's3', bucket: 'site', prefix: 'www/' }],
  ['s3://my.bucket/a/b/', { kind: 's3', bucket: 'my.bucket', prefix: 'a/b/' }],
  [
    'git+git@github.com:octo/site.git#gh-pages',
    { kind: 'git', remote: 'git@github.com:octo/site.git', branch: 'gh-pages' },
  ],
  [
    'git+https://example.com/a.git#release/v2',
    { kind: 'git', remote: 'https://example.com/a.git', branch: 'release/v2' },
  ],
  ['git+/srv/git/site.git', { kind: 'git', remote: '/srv/git/site.git', branch: 'gh-pages' }],
];
for (const [text, want] of targets) {
  test(`parseTarget ${text}`, () => assert.equal(parseTarget(text), want));
}

const badTargets: Array<[string, RegExp]> = [
  ['/var/www', /Unknown upload target/],
  ['http://example.com/x', /Unknown upload target/],
  ['-oProxyCommand=x:y', /Invalid host/],
  ['a b@host:x', /Invalid user/],
  ['host:', /no remote path/],
  ['s3://', /Invalid S3 bucket/],
  ['s3://bkt/../x', /must not contain/],
  ['git+ext::sh -c id#main', /ext:: and fd::/],
  ['git+-x#main', /must not start with "-"/],
  ['git+/x.git#a..b', /Invalid git branch/],
  ['git+/x.git#main.lock', /Invalid git branch/],
  ['deploy@web1:/x\n', /control characters/],
];
for (const [text, pattern] of badTargets) {
  test(`parseTarget refuses ${JSON.stringify(text)}`, () => {
    assert.throws(
      () => parseTarget(text),
      (e: Error) => e instanceof ValidationError && pattern.test(e.message),
    );
  });
}

test('parseTarget: --endpoint and --region go onto an s3:// target only, the endpoint checked', () => {
  assert.equal(parseTarget('s3://site/www', { endpoint: 'http://127.0.0.1:9000', region: 'eu-west-1' }), {
    kind: 's3',
    bucket: 'site',
    prefix: 'www/',
    endpoint: 'http://127.0.0.1:9000',
    region: 'eu-west-1',
  });
  assert.equal(parseTarget('s3://site', {}), { kind: 's3', bucket: 'site', prefix: '' });
  const refused: Array<[string, { endpoint?: string; region?: string }, RegExp]> = [
    [
      's3://site',
      { endpoint: 'ftp://x' },
      /Invalid S3 endpoint "ftp:\/\/x": it must be an http:\/\/ or https:\/\/ URL/,
    ],
    ['s3://site', { endpoint: 'http://a b' }, /Invalid S3 endpoint/],
    ['deploy@web1:/x', { endpoint: 'http://127.0.0.1:9000' }, /only for s3:\/\/ targets, not "deploy@web1:\/x"/],
    ['git+/r.git#main', { region: 'eu-west-1' }, /only for s3:\/\/ targets/],
  ];
  for (const [text, s3, pattern] of refused) {
    assert.throws(
      () => parseTarget(text, s3),
      (e: Error) => e instanceof ValidationError && pattern.test(e.message),
      `${text} ${JSON.stringify(s3)}`,
    );
  }
});

test('targetName round-trips the forms', () => {
  assert.is(targetName(parseTarget('deploy@web1:/x/')), 'deploy@web1:/x/');
  assert.is(targetName(parseTarget('s3://bkt/p')), 's3://bkt/p/');
  assert.is(targetName(parseTarget('git+/r.git#main')), 'git+/r.git#main');
});

test.run();
