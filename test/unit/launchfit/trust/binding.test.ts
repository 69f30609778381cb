// Which APP/PLATFORM a host is bound to and what a VERSION may offer it, table-driven.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkReleaseBinding, hostBindingOf, releasePrefixOf } from '../../../../lib/launchfit/trust/binding.ts';
import { parseLaunchConfigText } from '../../../../lib/launchfit/deploy-folder/config.ts';
import { emptyState } from '../../../../lib/launchfit/deploy-folder/state.ts';
import { parseVersionFile } from '../../../../lib/release/format/version-file.ts';

const HOST = { prefix: 'my-app-gnu-linux', app: 'my-app', platform: 'gnu-linux' };

test('releasePrefixOf: PREFIX-VERSION.tar.gz (or .tgz) with exactly that version', () => {
  assert.is(releasePrefixOf('my-app-gnu-linux-1.2.tar.gz', '1.2'), 'my-app-gnu-linux');
  assert.is(releasePrefixOf('my-app-gnu-linux-1.2.tgz', '1.2'), 'my-app-gnu-linux');
  assert.is(releasePrefixOf('my-app-gnu-linux-1.1.tar.gz', 'ff.0'), undefined);
  assert.is(
    releasePrefixOf('my-app-gnu-linux-1.2.0.tar.gz', '1.2'),
    undefined,
    'the text must match, not only the number',
  );
  assert.is(releasePrefixOf('-1.2.tar.gz', '1.2'), undefined);
});

test('checkReleaseBinding: what a bound host accepts and refuses', () => {
  const ok: Array<[string, typeof HOST | undefined]> = [
    ['CURRENT 1.1 my-app-gnu-linux-1.1.tar.gz\nAPP my-app\nPLATFORM gnu-linux', HOST],
    ['CURRENT 1.1 my-app-gnu-linux-1.1.tar.gz', HOST],
    ['CURRENT 1.1 my-app-gnu-linux-1.1.tar.gz\nAPP my-app\nPLATFORM gnu-linux', undefined],
  ];
  for (const [text, host] of ok) assert.equal(checkReleaseBinding(parseVersionFile(text), host), HOST, text);
  // A host bound by an older VERSION (prefix only) learns APP and PLATFORM from lines that agree.
  assert.equal(
    checkReleaseBinding(parseVersionFile('CURRENT 1.1 my-app-gnu-linux-1.1.tar.gz\nAPP my-app\nPLATFORM gnu-linux'), {
      prefix: 'my-app-gnu-linux',
    }),
    HOST,
  );
  assert.equal(checkReleaseBinding(parseVersionFile('CURRENT 1.1 my-app-gnu-linux-1.1.tar.gz'), undefined), {
    prefix: 'my-app-gnu-linux',
    app: undefined,
    platform: undefined,
  });

  const refused: Array<[string, { prefix: string; app?: string; platform?: string } | undefined, RegExp]> = [
    [
      'CURRENT 1.77 other-app-gnu-linux-1.77.tar.gz\nAPP other-app\nPLATFORM gnu-linux',
      HOST,
      /but this host runs APP my-app on PLATFORM gnu-linux/,
    ],
    [
      'CURRENT 1.78 my-app-darwin-arm64-1.78.tar.gz\nAPP my-app\nPLATFORM darwin-arm64',
      HOST,
      /but this host runs APP my-app/,
    ],
    [
      'CURRENT 1.77 other-app-gnu-linux-1.77.tar.gz',
      HOST,
      /offers other-app-gnu-linux-1\.77\.tar\.gz, but this host runs/,
    ],
    [
      'CURRENT 1.77 other-app-gnu-linux-1.77.tar.gz',
      { prefix: 'my-app-gnu-linux' },
      /this host runs my-app-gnu-linux-VERSION\.tar\.gz releases/,
    ],
    // APP/PLATFORM that split the same prefix differently are still another binding.
    ['CURRENT 1.1 my-app-gnu-linux-1.1.tar.gz\nAPP my\nPLATFORM app-gnu-linux', HOST, /but this host runs APP my-app/],
    [
      'CURRENT ff.0 my-app-gnu-linux-1.1.tar.gz',
      HOST,
      /version ff\.0 but names the file my-app-gnu-linux-1\.1\.tar\.gz/,
    ],
    ['CURRENT ff.0 my-app-gnu-linux-1.1.tar.gz', undefined, /must be the one in the file name/],
    [
      'CURRENT 1.1 other-app-gnu-linux-1.1.tar.gz\nAPP my-app\nPLATFORM gnu-linux',
      undefined,
      /says APP my-app and PLATFORM gnu-linux but names the file other-app/,
    ],
  ];
  for (const [text, host, pattern] of refused)
    assert.throws(() => checkReleaseBinding(parseVersionFile(text), host), pattern, text);
});

test("hostBindingOf: the config pin wins, then state, then the current release's file name", () => {
  const plain = parseLaunchConfigText('updates:\n  server: http://u/\n', '/d/launchify.yml');
  const pinned = parseLaunchConfigText('updates:\n  app: other-app\n  platform: gnu-linux\n', '/d/launchify.yml');
  const state = {
    ...emptyState(),
    binding: HOST,
    installed: {
      'my-app-gnu-linux-1.0': { version: '1.0', file: 'my-app-gnu-linux-1.0.tar.gz', sha256: '', installedAt: '' },
    },
  };
  assert.equal(hostBindingOf(pinned, state, 'my-app-gnu-linux-1.0'), {
    prefix: 'other-app-gnu-linux',
    app: 'other-app',
    platform: 'gnu-linux',
  });
  assert.equal(hostBindingOf(plain, state, 'my-app-gnu-linux-1.0'), HOST);
  assert.equal(hostBindingOf(plain, { ...state, binding: undefined }, 'my-app-gnu-linux-1.0'), {
    prefix: 'my-app-gnu-linux',
  });
  assert.is(hostBindingOf(plain, emptyState(), undefined), undefined, 'a first deploy is bound by what it installs');
});

test.run();
