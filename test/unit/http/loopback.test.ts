// Whether a URL's host is this machine (lib/http/loopback.ts), for the settings that allow plain
// http only to loopback: localhost, 127.0.0.0/8 and [::1], and nothing that only looks like them.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isLoopbackHost } from '../../../lib/http/loopback.ts';

test('localhost, 127.x.y.z and [::1] are loopback, as new URL() gives them', () => {
  for (const url of [
    'http://localhost:9000/',
    'http://LOCALHOST/',
    'http://127.0.0.1/',
    'http://127.1.2.3:8/',
    'http://[::1]:9000/',
  ])
    assert.ok(isLoopbackHost(new URL(url).hostname), url);
});

test('other hosts, and names that only start or end like loopback, are not', () => {
  for (const url of [
    'http://10.0.0.1/',
    'http://example.com/',
    'http://localhost.example.com/',
    'http://127.0.0.1.nip.io/',
    'http://[::2]/',
    'http://[::ffff:127.0.0.1]/',
    'http://0.0.0.0/',
  ])
    assert.not.ok(isLoopbackHost(new URL(url).hostname), url);
});

test.run();
