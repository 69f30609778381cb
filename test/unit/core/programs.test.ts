// Looking programs up on a PATH, and the message that names the missing ones (lib/core/programs.ts).
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../../lib/core/errors.ts';
import { describeMissingPrograms, findOnPath, missingPrograms, requirePrograms } from '../../../lib/core/programs.ts';
import { tmpDir } from '../../_helpers/common.ts';

const dir = tmpDir();
const bin = path.join(dir, 'bin');
mkdirSync(bin);
writeFileSync(path.join(bin, 'tool'), '#!/bin/sh\n');
chmodSync(path.join(bin, 'tool'), 0o755);
writeFileSync(path.join(bin, 'plain'), 'not executable\n');
mkdirSync(path.join(bin, 'folder'));

test('findOnPath: an executable file on the PATH, in order; not a plain file or a folder', () => {
  assert.is(findOnPath('tool', `/nonexistent:${bin}`), path.join(bin, 'tool'));
  assert.is(findOnPath('plain', bin), undefined);
  assert.is(findOnPath('folder', bin), undefined);
  assert.is(findOnPath('tool', ''), undefined);
  assert.is(findOnPath(path.join(bin, 'tool'), ''), path.join(bin, 'tool'));
});

test('missingPrograms keeps the order asked', () => {
  assert.equal(missingPrograms(['bash', 'tool', 'git'], bin), ['bash', 'git']);
});

test('the message names each program, what it is for, the PATH and the Debian package', () => {
  assert.is(
    describeMissingPrograms(['bash'], '/opt/bin'),
    'shipkit needs bash on the PATH to run commands (not found in PATH=/opt/bin). Install it (Debian: apt-get install bash) or add its folder to PATH.',
  );
  assert.is(
    describeMissingPrograms(['rsync', 'ssh'], ''),
    'shipkit needs rsync (to upload over rsync) and ssh (to reach rsync and git remotes over ssh) on the PATH (not found in PATH=(empty)). Install them (Debian: apt-get install rsync openssh-client) or add their folders to PATH.',
  );
});

test('requirePrograms throws a ConfigError (exit 2) only when one is missing', () => {
  requirePrograms(['tool'], bin);
  assert.throws(
    () => requirePrograms(['tool', 'bash'], bin),
    (e: unknown) => e instanceof ConfigError && /needs bash on the PATH/.test((e as Error).message),
  );
});

test.run();
