// `app.listen` entries: TCP (IP literal, fixed port) and Unix paths, and what is refused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseListenSpec } from '../../../../lib/launchfit/deploy-folder/listen-spec.ts';

test('listen entries: TCP, IPv6, Unix paths; names, port 0 and missing ports are refused', () => {
  assert.equal(parseListenSpec('127.0.0.1:8080', '/d'), {
    kind: 'tcp',
    host: '127.0.0.1',
    port: 8080,
    text: '127.0.0.1:8080',
  });
  assert.equal(parseListenSpec('[::1]:81', '/d'), { kind: 'tcp', host: '::1', port: 81, text: '[::1]:81' });
  assert.equal(parseListenSpec('run/app.sock', '/d'), { kind: 'unix', path: '/d/run/app.sock', text: 'run/app.sock' });
  for (const [bad, why] of [
    ['example.com:80', /must be an IP address/],
    ['127.0.0.1:0', /port 0/],
    ['8080x', /Invalid listen address/],
    ['127.0.0.1:70000', /Invalid port/],
  ] as const) {
    assert.throws(() => parseListenSpec(bad, '/d'), why, bad);
  }
});

test('a Unix socket path over 107 bytes is refused (the kernel would cut it), 107 is taken', () => {
  const dir = `/${'d'.repeat(90)}`;
  const fits = `run/${'x'.repeat(107 - dir.length - 5)}`;
  assert.is(parseListenSpec(fits, dir).kind, 'unix');
  assert.throws(
    () => parseListenSpec(`${fits}y`, dir),
    (error: Error) => /is 108 bytes; a Unix socket path can be at most 107/.test(error.message),
  );
  assert.throws(() => parseListenSpec(`run/${'s'.repeat(120)}.sock`, '/srv/app'), /at most 107/);
});

test.run();
