// report: / report_token: / report_api: in shipkit.yml (lib/config/report.ts): what a repo
// inherits from the top level, the Gitea/GitLab API address derived from url:, the http-only-on-
// loopback rule, and the token resolved at start (errors name FILE:LINE and the key, never the value).
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadShipkitConfig } from '../../../lib/config/shipkit-yml.ts';
import { ConfigError } from '../../../lib/core/errors.ts';
import { apiProblem, resolveReports } from '../../../lib/config/report.ts';
import { tmpDir } from '../../_helpers/common.ts';

const dir = tmpDir();
let n = 0;
function write(lines: string[]): string {
  const file = path.join(dir, `shipkit-${++n}.yml`);
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

test('a repo inherits the top level for the same forge, gives its own for another, and can turn it off', async () => {
  const config = await loadShipkitConfig(
    write([
      'report: github',
      'report_token: env:GH_TOKEN',
      'report_api: https://ghe.example.com/api/v3/',
      'repos:',
      '  octo/site: {}',
      '  octo/own:',
      '    report_token: file:own-token',
      '  octo/quiet:',
      '    report: off',
      '  octo/lab:',
      '    report: gitlab',
      '    report_token: env:LAB_TOKEN',
      '    url: https://gitlab.example.com/octo/lab.git',
      '  octo/tea:',
      '    report: gitea',
      '    report_token: env:TEA_TOKEN',
      '    url: http://127.0.0.1:3000/git/octo/tea.git',
    ]),
  );
  const r = (name: string) => config.repos.get(name)!.report;
  assert.equal(
    [r('octo/site')!.forge, r('octo/site')!.api, r('octo/site')!.token],
    ['github', 'https://ghe.example.com/api/v3/', 'env:GH_TOKEN'],
  );
  assert.equal([r('octo/own')!.api, r('octo/own')!.token], ['https://ghe.example.com/api/v3/', 'file:own-token']);
  assert.is(r('octo/quiet'), undefined);
  assert.equal(
    [r('octo/lab')!.forge, r('octo/lab')!.api],
    ['gitlab', 'https://gitlab.example.com/api/v4'],
    "derived from url:, not the top level's GitHub API",
  );
  assert.equal(
    [r('octo/tea')!.forge, r('octo/tea')!.api],
    ['gitea', 'http://127.0.0.1:3000/git/api/v1'],
    'a forge under a path, on loopback',
  );
  writeFileSync(path.join(dir, 'own-token'), 'own-secret\n');
  const resolved = await resolveReports(config.doc, config.repos.values(), {
    GH_TOKEN: 'gh-secret',
    LAB_TOKEN: 'lab-secret',
    TEA_TOKEN: 'tea',
  });
  assert.equal(resolved.get('octo/site'), {
    forge: 'github',
    token: 'gh-secret',
    api: 'https://ghe.example.com/api/v3',
  });
  assert.is(resolved.get('octo/own')!.token, 'own-secret');
  assert.is(resolved.has('octo/quiet'), false);
});

test('a repo without report: anywhere reports nothing', async () => {
  const config = await loadShipkitConfig(write(['repos:', '  octo/site: {}']));
  assert.is(config.repos.get('octo/site')!.report, undefined);
});

test('the token is resolved at start: a missing variable names FILE:LINE and the key, never a value', async () => {
  const file = write(['report: github', 'report_token: env:NOPE_TOKEN', 'repos:', '  octo/site: {}']);
  const config = await loadShipkitConfig(file);
  try {
    await resolveReports(config.doc, config.repos.values(), {});
    assert.unreachable('expected a ConfigError');
  } catch (error) {
    assert.instance(error, ConfigError);
    assert.is(
      (error as Error).message,
      `${file}:2: report_token: environment variable NOPE_TOKEN is not set or empty.`,
    );
  }
});

test('report_api: absolute http(s), no credentials, no query; plain http only on loopback', () => {
  const ok = [
    'https://api.github.com',
    'https://ghe.example.com/api/v3',
    'http://127.0.0.1:8080/api/v1',
    'http://localhost/api/v4',
    'http://[::1]:3000/api/v1',
  ];
  for (const url of ok) assert.is(apiProblem(url), undefined, url);
  const bad: Array<[string, RegExp]> = [
    ['api.github.com', /absolute URL/],
    ['ftp://api.example.com', /https:\/\//],
    ['http://api.example.com', /clear text/],
    ['http://127.0.0.1.example.com/api', /clear text/],
    ['https://x:y@api.example.com', /user name or password/],
    ['https://api.example.com/?token=1', /query/],
  ];
  for (const [url, message] of bad) assert.match(apiProblem(url) ?? '', message, url);
});

test('a derived API address over plain http to another host is refused, naming url:', async () => {
  const file = write([
    'repos:',
    '  octo/site:',
    '    url: http://gitea.example.com/octo/site.git',
    '    report: gitea',
    '    report_token: env:T',
  ]);
  try {
    await loadShipkitConfig(file);
    assert.unreachable('expected a ConfigError');
  } catch (error) {
    assert.match(
      (error as Error).message,
      `${file}:3: repos.octo/site.url: report: gitea: the API address derived from url: (http://gitea.example.com/api/v1) must be https://`,
    );
  }
});

test.run();
