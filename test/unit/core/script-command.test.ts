// How one shipkit program starts another from the sources (lib/core/script-command.ts): an
// override from SHIPKIT_BUILD_COMMAND (one path, or a JSON argv), else this runtime with the
// checkout's script; the command it gives really runs `build --help`. Bundles: test/e2e/install/.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bundledCommandFor, scriptCommandFor } from '../../../lib/core/script-command.ts';
import { ROOT, runCommand } from '../../_helpers/common.ts';

test('from the sources there is no bundled command', () => {
  assert.is(bundledCommandFor('build'), undefined);
  assert.is(bundledCommandFor('litpro'), undefined);
});

test('an override: a path as one argument, or a JSON argv', async () => {
  assert.equal(await scriptCommandFor('build', { SHIPKIT_BUILD_COMMAND: '/usr/lib/shipkit/bin/build' }), [
    '/usr/lib/shipkit/bin/build',
  ]);
  assert.equal(await scriptCommandFor('release', { SHIPKIT_RELEASE_COMMAND: ' ["/bin/sh", "/x/fake.sh"]' }), [
    '/bin/sh',
    '/x/fake.sh',
  ]);
  assert.equal(
    await scriptCommandFor('build', { SHIPKIT_RELEASE_COMMAND: '/other' }),
    await scriptCommandFor('build', {}),
  );
});

test("without one: this runtime and the checkout's script, which runs", async () => {
  const argv = await scriptCommandFor('build', {});
  assert.is(argv[0], process.execPath);
  assert.is(argv.at(-1), `${ROOT}/scripts/build.ts`);
  const [cmd, ...args] = argv;
  const r = await runCommand(cmd, [...args, '--help'], { cwd: '/' });
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /^Usage: build /m);
});

test.run();
