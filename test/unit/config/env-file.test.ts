// hook-server.env beside the config (lib/config/env-file.ts): an unset env: secret it sets is
// explained with where it is and how to load it; a variable it does not set, or no such file,
// leaves the error as it was, except with the Debian package's config, where the message names
// the package's file and the runuser line. The run by hand: test/e2e/hook-server/basics.test.ts.
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../../lib/core/errors.ts';
import { envFileFor, explainUnsetVariable, unsetVariableHint } from '../../../lib/config/env-file.ts';
import { tmpDir } from '../../_helpers/common.ts';

const dir = tmpDir();
const config = path.join(dir, 'shipkit.yml');
const envFile = path.join(dir, 'hook-server.env');
writeFileSync(envFile, 'SHIPKIT_WEBHOOK_SECRET=s3cret\nexport OTHER=x\n');
const rootGroup = { groups: () => 'root:x:0:\n' };

test("envFileFor: hook-server.env in the config's folder", () => {
  assert.is(envFileFor('/etc/shipkit/shipkit.yml'), '/etc/shipkit/hook-server.env');
});

test('a variable the file sets: where it is and the commands that load it; never its value', () => {
  const hint = unsetVariableHint('SHIPKIT_WEBHOOK_SECRET', config, rootGroup)!;
  assert.match(
    hint,
    `It is set in ${envFile}, which only the hook-server systemd unit loads: start that (systemctl start hook-server)`,
  );
  assert.match(hint, `set -a; . ${envFile}; set +a`);
  assert.not.match(hint, 's3cret');
  assert.ok(unsetVariableHint('OTHER', config, rootGroup), 'export NAME= lines count');
});

test('a variable the file does not set, or no file: no hint, and the error stays as it was', () => {
  assert.is(unsetVariableHint('NOT_THERE', config, rootGroup), undefined);
  assert.is(unsetVariableHint('SHIPKIT_WEBHOOK_SECRET', '/nonexistent/shipkit.yml'), undefined);
  const error = new ConfigError('x: environment variable NOT_THERE is not set or empty.');
  assert.is(explainUnsetVariable(error, 'env:NOT_THERE', config, {}, rootGroup), error);
  assert.is(explainUnsetVariable(error, 'file:/x', config, {}, rootGroup), error);
  const explained = explainUnsetVariable(
    new ConfigError('x: environment variable SHIPKIT_WEBHOOK_SECRET is not set or empty.'),
    'env:SHIPKIT_WEBHOOK_SECRET',
    config,
    {},
    rootGroup,
  );
  assert.instance(explained, ConfigError);
  assert.match(
    (explained as Error).message,
    /^x: environment variable SHIPKIT_WEBHOOK_SECRET is not set or empty\. It is set in /,
  );
});

test('a path that needs quoting is quoted, and not nested in runuser', () => {
  const odd = path.join(dir, 'my etc');
  mkdirSync(odd);
  writeFileSync(path.join(odd, 'hook-server.env'), 'A=1\n');
  chmodSync(path.join(odd, 'hook-server.env'), 0o640);
  const hint = unsetVariableHint('A', path.join(odd, 'shipkit.yml'), { groups: () => 'staff:x:50:\n' })!;
  assert.match(hint, `set -a; . '${path.join(odd, 'hook-server.env')}'; set +a`);
  assert.not.match(hint, 'runuser');
});

test("the package's config without hook-server.env: names the package's file, how to write it again, and the runuser line", () => {
  const etc = path.join(dir, 'package-etc');
  mkdirSync(etc);
  const packageConfig = path.join(etc, 'shipkit.yml');
  const file = path.join(etc, 'hook-server.env');
  const runAs = `runuser -u shipkit -- sh -c 'set -a; . ${file}; set +a; exec hook-server --config ${packageConfig}'`;
  const hint = unsetVariableHint('SHIPKIT_WEBHOOK_SECRET', packageConfig, { ...rootGroup, packageConfig })!;
  assert.is(
    hint,
    `The Debian package keeps it in ${file} (root:shipkit 0640), which is missing: \`dpkg-reconfigure shipkit\` writes it again, with a new webhook secret and read token (give the new secret to the forges' webhooks). ` +
      `Then start the hook-server systemd unit (systemctl start hook-server), which loads that file, or start it by hand as root: ${runAs}.`,
  );
  assert.match(
    unsetVariableHint('SLACK_URL', packageConfig, { ...rootGroup, packageConfig })!,
    'then add SLACK_URL=… to it',
  );
  assert.is(
    unsetVariableHint('SHIPKIT_WEBHOOK_SECRET', packageConfig, rootGroup),
    undefined,
    'another config: no hint',
  );
  const explained = explainUnsetVariable(
    new ConfigError(`${packageConfig}: secret: environment variable SHIPKIT_WEBHOOK_SECRET is not set or empty.`),
    'env:SHIPKIT_WEBHOOK_SECRET',
    packageConfig,
    {},
    { ...rootGroup, packageConfig },
  ) as Error;
  assert.match(explained.message, /is not set or empty\. The Debian package keeps it in .*hook-server\.env/);
  assert.match(explained.message, runAs);
});

test("the package's hook-server.env without the variable: says to add it there, and the runuser line", () => {
  const etc = path.join(dir, 'package-etc-2');
  mkdirSync(etc);
  const packageConfig = path.join(etc, 'shipkit.yml');
  const file = path.join(etc, 'hook-server.env');
  writeFileSync(file, 'SHIPKIT_WEBHOOK_SECRET=s3cret\n', { mode: 0o640 });
  const hint = unsetVariableHint('SHIPKIT_TOKEN', packageConfig, { ...rootGroup, packageConfig })!;
  assert.match(
    hint,
    `in ${file}, which the hook-server systemd unit loads, and SHIPKIT_TOKEN is not in it: add SHIPKIT_TOKEN=… there`,
  );
  assert.match(
    hint,
    `runuser -u shipkit -- sh -c 'set -a; . ${file}; set +a; exec hook-server --config ${packageConfig}'`,
  );
  assert.not.match(hint, 's3cret');
  assert.is(unsetVariableHint('SHIPKIT_TOKEN', packageConfig, rootGroup), undefined, 'another config: as before');
});

test.run();
