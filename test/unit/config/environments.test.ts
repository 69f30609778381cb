// The `apps:` block (lib/config/environments.ts): environments in the order written, `from:`
// defaulting to the one above, DESTs made absolute, a fleet: app named, approvals, windows and
// gates parsed; each mistake a configuration error naming FILE:LINE and the key.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../../lib/core/errors.ts';
import { parseYamlText } from '../../../lib/core/yaml-config.ts';
import { parseApps } from '../../../lib/config/environments.ts';
import { parseShipkitConfig } from '../../../lib/config/shipkit-yml.ts';
import { parseFleetConfig } from '../../../lib/config/fleet.ts';
import { ROOT } from '../../_helpers/common.ts';

const parse = (text: string) => {
  const doc = parseYamlText(text, '/etc/shipkit/shipkit.yml');
  return parseApps(doc, parseFleetConfig(doc));
};

const TWO = `fleet:
  web:
    secret: env:FLEET_WEB
apps:
  web:
    key: file:keys/release.asc
    environments:
      staging: { to: updates/staging, branches: [main] }
      production:
        to: deploy@host:/srv/updates
        fleet: web
        rollout: { steps: [10, 100], wait: 30 }
        approvals: { required: 1, from: [keys/alice.asc] }
        windows: [{ deny: "Fri 15:00 - Mon 08:00", tz: Europe/Berlin }]
        gates: [{ prometheus: "http://127.0.0.1:9090", query: "up", max: 0.5, for: 10s }]
`;

test('environments in order, from: the one above, DESTs and key files made absolute', () => {
  const app = parse(TWO).get('web')!;
  assert.equal([...app.environments.keys()], ['staging', 'production']);
  assert.is(app.key, '/etc/shipkit/keys/release.asc');
  const [staging, production] = [app.environments.get('staging')!, app.environments.get('production')!];
  assert.equal([staging.to, staging.from, staging.branches], ['/etc/shipkit/updates/staging', undefined, ['main']]);
  assert.equal([production.to, production.from, production.fleet?.app], ['deploy@host:/srv/updates', 'staging', 'web']);
  assert.equal(production.rollout?.steps, [10, 100]);
  assert.is(production.rollout?.waitSec, 30);
  assert.equal(production.approvals, { required: 1, from: ['/etc/shipkit/keys/alice.asc'], expiresMs: 86_400_000 });
  assert.is(production.windows.length, 1);
  assert.is(production.gates[0].max, 0.5);
  assert.is(production.gates[0].forSec, 10);
  assert.equal([staging.copy, production.copy], [false, false], 'promotes link where they can, by default');
  const copying = parse(TWO.replace('fleet: web\n', 'fleet: web\n        copy: true\n')).get('web')!;
  assert.is(copying.environments.get('production')!.copy, true);
  assert.is(parse('repos: {}\n').size, 0, 'no apps: block, no apps');
});

test('status-page users approve beside keys: ui:NAME entries, with the key hook-server signs their approvals with', () => {
  const app = parse(
    TWO.replace(
      'required: 1, from: [keys/alice.asc] }',
      'required: 2, from: [keys/alice.asc, ui:carol, ui:dave], ui_key: keys/ui.asc }',
    ),
  ).get('web')!;
  assert.equal(app.environments.get('production')!.approvals, {
    required: 2,
    from: ['/etc/shipkit/keys/alice.asc'],
    users: ['carol', 'dave'],
    uiKey: '/etc/shipkit/keys/ui.asc',
    expiresMs: 86_400_000,
  });
  const load = (text: string) => parseShipkitConfig(parseYamlText(text, '/etc/shipkit/shipkit.yml'));
  const top = load('token: env:T\nui_users: ui-users\nui_key: file:keys/ui-secret.asc\n');
  assert.throws(() => load('ui_users: u\n'), /shipkit\.yml:1.*ui_users: needs token: as well/);
  assert.equal([top.uiUsers, top.uiKey], ['/etc/shipkit/ui-users', '/etc/shipkit/keys/ui-secret.asc']);
  assert.throws(() => load('ui_key: k.asc\n'), /shipkit\.yml:1.*ui_key: signs approvals given by status-page users/);
  assert.throws(
    () => load('token: t\nui: off\nui_users: u\n'),
    /shipkit\.yml:3.*ui_users: names status-page users, but ui: off/,
  );
});

test("shipkit.example.yml's commented apps: block parses, with the fleet: block above it", () => {
  const text = readFileSync(path.join(ROOT, 'shipkit.example.yml'), 'utf8');
  const fleet = /^# fleet:\n(?:#   .*\n)+/m.exec(text)?.[0];
  const apps = /^# apps:\n(?:#   .*\n)+/m.exec(text)?.[0];
  assert.ok(fleet && apps, 'commented fleet: and apps: blocks');
  const app = parse(`${fleet}${apps}`.replace(/^# ?/gm, '')).get('my-app')!;
  assert.equal([...app.environments.keys()], ['staging', 'production']);
  assert.is(app.environments.get('production')!.approvals?.required, 1);
});

test("a repo's publish: goes to the environment whose branches: hold its branch", () => {
  const repo = (branch: string, to = '') =>
    `repos:\n  octo/web:\n    branch: ${branch}\n    publish: { from: dist, name: web, platform: linux, key: k.asc${to} }\n`;
  const load = (text: string) => parseShipkitConfig(parseYamlText(text, '/etc/shipkit/shipkit.yml'));
  const mapped = load(`${TWO}${repo('main')}`).repos.get('octo/web')!.publish!;
  assert.equal([mapped.to, mapped.environment], ['/etc/shipkit/updates/staging', 'staging']);
  const own = load(`${TWO}${repo('dev', ', to: /srv/dev')}`).repos.get('octo/web')!.publish!;
  assert.equal([own.to, own.environment], ['/srv/dev', undefined]);
  assert.throws(
    () => load(`${TWO}${repo('main', ', to: /srv/other')}`),
    /publish\.to: is \/srv\/other, but branch main publishes to environment staging/,
  );
  assert.throws(() => load(`${TWO}${repo('dev')}`), /shipkit\.yml:\d+: repos\.octo\/web\.publish: needs to: /);
});

test("an environment's env: reaches the builds that publish there, over the repo's own", () => {
  const text = `${TWO.replace(
    'staging: { to: updates/staging, branches: [main] }',
    'staging: { to: updates/staging, branches: [main], env: { API_URL: https://staging.example.com, TOKEN: env:STAGING_TOKEN } }',
  )}repos:
  octo/web:
    branch: main
    env: { API_URL: http://localhost, KEEP: "1" }
    publish: { from: dist, name: web, platform: linux, key: k.asc }
  octo/other:
    branch: dev
    env: { API_URL: http://localhost }
    publish: { from: dist, name: web, platform: linux, key: k.asc, to: /srv/dev }
`;
  const config = parseShipkitConfig(parseYamlText(text, '/etc/shipkit/shipkit.yml'));
  const env = config.repos.get('octo/web')!.env.map((e) => [e.name, e.value, e.secret]);
  assert.equal(env, [
    ['KEEP', '1', false],
    ['API_URL', 'https://staging.example.com', false],
    ['TOKEN', 'env:STAGING_TOKEN', true],
  ]);
  assert.equal(
    config.repos.get('octo/other')!.env.map((e) => [e.name, e.value]),
    [['API_URL', 'http://localhost']],
    'a branch of no environment keeps its own',
  );
  assert.throws(
    () => parse(TWO.replace('branches: [main] }', 'branches: [main], env: { SHIPKIT_X: a } }')),
    /environments\.staging\.env\.SHIPKIT_X: is set by shipkit/,
  );
});

test('refused, each naming its line and key', () => {
  const env = (body: string) => `apps:\n  web:\n    environments:\n      staging: { to: /srv/s }\n${body}`;
  const cases: Array<[string, RegExp]> = [
    ['apps:\n  web:\n    environments: {}\n', /shipkit\.yml:3.*apps\.web\.environments: names no environment/],
    ['apps:\n  web:\n    other: 1\n', /apps\.web\.other: unknown key/],
    ['apps:\n  "../x":\n    environments: { a: { to: /s } }\n', /is not a valid app name/],
    [
      env('      production: { to: /srv/p, from: qa }\n'),
      /shipkit\.yml:5.*production\.from: must name another environment/,
    ],
    [
      env('      production: { to: /srv/p, fleet: nope }\n'),
      /production\.fleet: names nope, which the top-level fleet: block/,
    ],
    [env('      production: { to: "http://x/y" }\n'), /production\.to: must be a folder, user@host:path or s3/],
    [
      env('      production: { to: /p, approvals: { required: 2, from: [a.asc] } }\n'),
      /approvals\.required: must be a whole number from 1 to 1/,
    ],
    [env('      production: { to: /p, approvals: { from: [] } }\n'), /approvals\.from: must list the approvers/],
    [
      env('      production: { to: /p, approvals: { from: [a.asc], expires: 1y } }\n'),
      /approvals\.expires: must be a duration/,
    ],
    [env('      production: { to: /p, approvals: { from: [env:KEY] } }\n'), /approvals\.from\[0\]: must name a file/],
    [
      env('      production: { to: /p, approvals: { from: [a.asc, "ui:no.dots"], ui_key: ui.asc } }\n'),
      /shipkit\.yml:5.*approvals\.from\[1\]: names a status-page user that is not a user name/,
    ],
    [env('      production: { to: /p, approvals: { from: ["ui:"], ui_key: ui.asc } }\n'), /from\[0\]: .*is empty/],
    [
      env('      production: { to: /p, approvals: { from: [ui:carol, ui:carol], ui_key: ui.asc } }\n'),
      /approvals\.from\[1\]: names ui:carol a second time/,
    ],
    [
      env('      production: { to: /p, approvals: { from: [ui:carol] } }\n'),
      /shipkit\.yml:5.*production\.approvals: names status-page users \(ui:NAME\) but no ui_key/,
    ],
    [
      env('      production: { to: /p, approvals: { from: [a.asc], ui_key: ui.asc } }\n'),
      /approvals\.ui_key: is for approvals by status-page users/,
    ],
    [
      env(
        '      production:\n        to: /p\n        windows:\n          - { deny: "Fri 15:00 - Mon 08:00", tz: Europe/Berln }\n',
      ),
      /shipkit\.yml:8.*windows\[0\]: .*Europe\/Berln/,
    ],
    [
      env('      production: { to: /p, windows: [{ deny: "Fri 25:00 - Mon 08:00" }] }\n'),
      /shipkit\.yml:5.*windows\[0\]: .*25:00/,
    ],
    [env('      production: { to: /p, gates: [{ prometheus: ftp://x, query: up, max: 1 }] }\n'), /gates\[0\]: /],
    [env('      production: { to: /p, windows: { deny: x } }\n'), /production\.windows: must be a list/],
    [
      env('      production: { to: /p, branches: [main] }\n').replace('/srv/s }', '/srv/s, branches: [main] }'),
      /maps branch main to more than one environment \(staging, production\)/,
    ],
    [env('      production: { to: /p, rollout: { steps: [50, 10] } }\n'), /production\.rollout\.steps: /],
    [env('      production: { to: /p, copy: "yes" }\n'), /shipkit\.yml:5.*production\.copy: /],
  ];
  for (const [text, pattern] of cases) {
    try {
      parse(text);
      assert.unreachable(text);
    } catch (error) {
      assert.instance(error, ConfigError, text);
      assert.match((error as Error).message, pattern, text);
    }
  }
});

test.run();
