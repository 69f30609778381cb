// The single values of a `previews:` block (lib/config/preview-values.ts), side by side: what each
// rule takes, how it is spelled afterwards, and what it refuses; commands split into argv with
// quotes and without anything a shell alone would understand.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  loginProblem,
  normalisePreviewPath,
  parseCpuPercent,
  parseDuration,
  parseListen,
  parseMemory,
  previewDomainProblem,
  previewPathProblem,
  splitCommand,
} from '../../../lib/config/preview-values.ts';

test('domains: DNS names previews go under; wildcards, IPs, odd characters refused', () => {
  for (const ok of ['preview.example.com', 'localhost', 'a-b.c0.example', 'x.io'])
    assert.is(previewDomainProblem(ok), undefined, ok);
  const refused: Array<[string, RegExp]> = [
    ['*.example.com', /wildcard/],
    ['pr-*.example.com', /wildcard/],
    ['Example.com', /lower case/],
    ['example.com.', /end with a dot/],
    ['-a.example.com', /DNS name/],
    ['a..b', /DNS name/],
    ['a b.com', /DNS name/],
    ['a.com;', /DNS name/],
    ['a.com/x', /DNS name/],
    ['', /DNS name/],
    ['127.0.0.1', /IP address/],
    [`${'a'.repeat(64)}.com`, /DNS name/],
    [`${'abcdefgh.'.repeat(28)}com`, /longer than/],
  ];
  for (const [domain, why] of refused) assert.match(previewDomainProblem(domain) ?? 'accepted', why, domain);
});

test('paths: a leading slash and plain segments; one spelling with a trailing slash', () => {
  for (const ok of ['/', '/previews', '/previews/', '/a/b_c~d/', '/v1.2/'])
    assert.is(previewPathProblem(ok), undefined, ok);
  for (const bad of [
    'previews/',
    '',
    '//',
    '/a//b/',
    '/../x/',
    '/a/./',
    '/a b/',
    '/a;/',
    '/a{/',
    '/$x/',
    '/é/',
    '/a?b',
  ])
    assert.ok(previewPathProblem(bad), `${JSON.stringify(bad)} refused`);
  assert.is(normalisePreviewPath('/previews'), '/previews/');
  assert.is(normalisePreviewPath('/previews/'), '/previews/');
});

test('listen: a port or ADDRESS:PORT, as nginx writes it', () => {
  const table: Array<[unknown, string | undefined]> = [
    [80, '80'],
    ['8080', '8080'],
    ['127.0.0.1:8080', '127.0.0.1:8080'],
    ['0.0.0.0:80', '0.0.0.0:80'],
    ['[::1]:80', '[::1]:80'],
    [0, undefined],
    [65_536, undefined],
    ['80 ssl', undefined],
    ['localhost:80', undefined],
    ['256.1.1.1:80', undefined],
    ['127.0.0.1', undefined],
    [true, undefined],
    [80.5, undefined],
  ];
  for (const [value, want] of table) assert.is(parseListen(value), want, JSON.stringify(value));
});

test('durations, memory sizes and CPU shares', () => {
  assert.is(parseDuration('72h'), 72 * 3_600_000);
  assert.is(parseDuration('30m'), 1_800_000);
  assert.is(parseDuration('7d'), 7 * 86_400_000);
  assert.is(parseDuration('90s'), 90_000);
  for (const bad of ['soon', '0h', '72', 72, '1.5h', '-1h', '72 hours', ''])
    assert.is(parseDuration(bad), undefined, String(bad));
  assert.is(parseMemory('512M'), 512 * 1024 ** 2);
  assert.is(parseMemory('1G'), 1024 ** 3);
  assert.is(parseMemory('1g'), 1024 ** 3);
  assert.is(parseMemory('65536K'), 64 * 1024 ** 2);
  for (const bad of ['lots', '512', 512, '0M', '1.5G', '1T', '-1G'])
    assert.is(parseMemory(bad), undefined, String(bad));
  assert.is(parseCpuPercent('50%'), 50);
  assert.is(parseCpuPercent('100%'), 100);
  assert.is(parseCpuPercent('1%'), 1);
  for (const bad of ['150%', '0%', '50', 0.5, '50 %', 'half']) assert.is(parseCpuPercent(bad), undefined, String(bad));
});

test('logins of the forges', () => {
  for (const ok of ['alice', 'bob-smith', 'a.b', 'x_y', 'A1']) assert.is(loginProblem(ok), undefined, ok);
  for (const bad of ['', 'a b', '-a', 'a-', '@alice', 'a/b', 3, null]) assert.ok(loginProblem(bad), String(bad));
});

test('splitCommand: words, quotes taken as written, nothing for a shell', () => {
  const ok: Array<[string, string[]]> = [
    ['nginx -t', ['nginx', '-t']],
    ['  nginx   -s\treload ', ['nginx', '-s', 'reload']],
    ["sudo -n '/usr/sbin/nginx' -s reload", ['sudo', '-n', '/usr/sbin/nginx', '-s', 'reload']],
    [`nginx -g 'daemon off; pid /x;'`, ['nginx', '-g', 'daemon off; pid /x;']],
    [`a "b c" ''`, ['a', 'b c', '']],
    [`a x"y z"w`, ['a', 'xy zw']],
    ['/usr/sbin/nginx -p /srv/a-b_c -c nginx.conf', ['/usr/sbin/nginx', '-p', '/srv/a-b_c', '-c', 'nginx.conf']],
  ];
  for (const [text, argv] of ok) assert.equal(splitCommand(text), { argv }, text);
  const refused: Array<[string, RegExp]> = [
    ['nginx -t && nginx -s reload', /holds &/],
    ['nginx -t; reboot', /holds ;/],
    ['nginx -t | cat', /holds \|/],
    ['nginx -t > /dev/null', /holds >/],
    ['kill -HUP $(cat pid)', /holds \$/],
    ['echo `id`', /holds `/],
    ['rm *.conf', /holds \*/],
    ['cat ~/x', /holds ~/],
    ['a\\ b', /holds \\/],
    ['a "$HOME"', /inside "…"/],
    ['a "x', /" that is not closed/],
    ["a 'x", /' that is not closed/],
    ['a\nb', /line break/],
    ['', /is empty/],
    ['   ', /is empty/],
    ["'' -t", /is empty/],
  ];
  for (const [text, why] of refused) {
    const split = splitCommand(text);
    assert.ok('problem' in split, `${JSON.stringify(text)} refused`);
    assert.match((split as { problem: string }).problem, why, text);
  }
});

test.run();
