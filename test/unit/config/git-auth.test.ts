// lib/config/git-auth.ts: which clone URLs are ssh remotes, and their host for known_hosts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { sshRemoteOf } from '../../../lib/config/git-auth.ts';

test('sshRemoteOf: ssh:// and scp-style URLs give user, host and port; others give nothing', () => {
  const cases: Array<[string | undefined, ReturnType<typeof sshRemoteOf>]> = [
    ['git@github.com:octo/site.git', { user: 'git', host: 'github.com', port: 22 }],
    ['github.com:octo/site.git', { user: undefined, host: 'github.com', port: 22 }],
    ['ssh://git@git.example.com:2222/octo/site.git', { user: 'git', host: 'git.example.com', port: 2222 }],
    ['ssh://git.example.com/octo/site.git', { user: undefined, host: 'git.example.com', port: 22 }],
    ['git+ssh://git@[::1]:2200/srv/site.git', { user: 'git', host: '::1', port: 2200 }],
    ['https://github.com/octo/site.git', undefined],
    ['https://user:tok@github.com/octo/site.git', undefined],
    ['file:///srv/git/site.git', undefined],
    ['/srv/git/site.git', undefined],
    [undefined, undefined],
  ];
  for (const [url, expected] of cases) assert.equal(sshRemoteOf(url), expected, String(url));
});

test.run();
