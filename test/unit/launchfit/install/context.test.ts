// What every update phase shares (lib/launchfit/install/context.ts): the release folder name a
// tarball gets, and the app control that does nothing (an update without `launchfit run`).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { VerificationError } from '../../../../lib/core/errors.ts';
import { NO_APP, releaseNameOf } from '../../../../lib/launchfit/install/context.ts';

test('releaseNameOf: the tarball name without .tar.gz or .tgz; anything else is refused', () => {
  assert.is(releaseNameOf('my-app-gnu-linux-1.2.tar.gz'), 'my-app-gnu-linux-1.2');
  assert.is(releaseNameOf('app-1.tgz'), 'app-1');
  for (const bad of ['app-1.zip', '../x.tar.gz', 'a/b.tar.gz', '.tar.gz', '.hidden.tar.gz', 'x y.tar.gz']) {
    assert.throws(
      () => releaseNameOf(bad),
      (error: unknown) => error instanceof VerificationError && /plain NAME\.tar\.gz/.test((error as Error).message),
      bad,
    );
  }
});

test('NO_APP: stopping does nothing and a start counts as healthy', async () => {
  assert.is(await NO_APP.stop(), undefined);
  assert.is(await NO_APP.start(true), true);
});

test.run();
