// The host's provenance check, piece by piece: repo names that compare equal, ref globs,
// updates.provenance / provenance_source / provenance_builder config errors naming the key and
// line, and the modes
// against a real HTTP server on loopback: off fetches nothing, optional accepts a release
// without provenance, required refuses it. (Signed envelopes, end to end: e2e/launchfit-provenance.)
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../../../lib/core/log.ts';
import { parseLaunchConfigText } from '../../../../lib/launchfit/deploy-folder/config.ts';
import {
  MAX_PROVENANCE_BYTES,
  checkProvenance,
  normalizeRepo,
  refMatches,
} from '../../../../lib/launchfit/trust/provenance.ts';

test('repo names: owner/name, GitHub URLs with or without .git, git+ and case compare equal; others do not', () => {
  for (const r of [
    'octo/site',
    'https://github.com/octo/site',
    'https://github.com/Octo/site.git',
    'git+https://github.com/octo/site/',
  ])
    assert.is(normalizeRepo(r), 'octo/site', r);
  assert.is.not(normalizeRepo('evil/site'), normalizeRepo('octo/site'));
  assert.is.not(normalizeRepo('https://gitlab.example/octo/site'), normalizeRepo('octo/site'));
});

test('ref globs: * matches any run, the rest literally', () => {
  assert.ok(refMatches('refs/tags/v1.2.0', 'refs/tags/v*'));
  assert.ok(refMatches('refs/tags/v1.2.0', 'refs/tags/v1.2.0'));
  assert.not.ok(refMatches('refs/heads/main', 'refs/tags/v*'));
  assert.not.ok(refMatches('refs/tags/v1x2', 'refs/tags/v1.2'), 'a dot is a dot');
  assert.not.ok(refMatches('refs/tags/v1.2.0-evil', 'refs/tags/v1.2.0'));
});

const yml = (extra: string) => `updates:\n  server: http://127.0.0.1:1/\n${extra}`;

test('config: default off; required/optional need provenance_source.repo; errors name the key and line', () => {
  assert.is(parseLaunchConfigText(yml(''), '/x/launchify.yml').updates.provenance, 'off');
  const c = parseLaunchConfigText(
    yml('  provenance: required\n  provenance_source:\n    repo: octo/site\n    ref: refs/tags/v*\n'),
    '/x/launchify.yml',
  );
  assert.equal(
    [c.updates.provenance, c.updates.provenanceSource, c.updates.provenanceBuilder],
    ['required', { repo: 'octo/site', ref: 'refs/tags/v*' }, undefined],
  );
  const pinned = parseLaunchConfigText(
    yml(
      '  provenance: optional\n  provenance_source:\n    repo: octo/site\n  provenance_builder: https://ci.example/b\n',
    ),
    '/x/launchify.yml',
  );
  assert.is(pinned.updates.provenanceBuilder, 'https://ci.example/b');
  const bad: Array<[string, RegExp]> = [
    ['  provenance: yes\n', /launchify\.yml:3.*updates\.provenance: must be required, optional or off/],
    ['  provenance: required\n', /updates\.provenance_source\.repo: is required with updates\.provenance: required/],
    [
      '  provenance: optional\n  provenance_source:\n    repo: "not a repo"\n',
      /launchify\.yml:5.*updates\.provenance_source\.repo: must be a URL or owner\/name/,
    ],
    [
      '  provenance_source:\n    repo: octo/site\n    ref: v*\n',
      /launchify\.yml:5.*updates\.provenance_source\.ref: must be a full ref or a glob/,
    ],
    ['  provenance_source:\n    branch: main\n', /provenance_source.*branch/],
    [
      '  provenance_builder: https://ci.example/builder\n',
      /launchify\.yml:3.*updates\.provenance_builder: is set but updates\.provenance is off/,
    ],
    [
      '  provenance: required\n  provenance_source:\n    repo: octo/site\n  provenance_builder: "ci builder"\n',
      /launchify\.yml:6.*updates\.provenance_builder: must be the builder's id as a URI/,
    ],
  ];
  for (const [extra, pattern] of bad) {
    try {
      parseLaunchConfigText(yml(extra), '/x/launchify.yml');
      assert.unreachable(extra);
    } catch (error) {
      assert.match((error as Error).message, pattern);
    }
  }
});

test('modes against a real server: off fetches nothing, optional accepts none, required refuses none', async () => {
  const hits: string[] = [];
  const server = createServer((req, res) => {
    hits.push(req.url!);
    res.statusCode = 404;
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/a-x-1.0.tar.gz`;
  const base = {
    url,
    file: 'a-x-1.0.tar.gz',
    sha256: '0'.repeat(64),
    trusted: { keys: [], revoked: {} } as any,
    timeouts: { connectMs: 5000, idleMs: 5000, totalMs: 10_000 },
    log: silentLogger,
  };
  try {
    assert.is(await checkProvenance({ ...base, updates: { provenance: 'off' } }), undefined);
    assert.equal(hits, []);
    assert.is(
      await checkProvenance({ ...base, updates: { provenance: 'optional', provenanceSource: { repo: 'o/n' } } }),
      undefined,
    );
    assert.equal(hits, ['/a-x-1.0.intoto.jsonl']);
    try {
      await checkProvenance({ ...base, updates: { provenance: 'required', provenanceSource: { repo: 'o/n' } } });
      assert.unreachable('required refuses a missing provenance');
    } catch (error) {
      assert.match(
        (error as Error).message,
        /a-x-1\.0\.intoto\.jsonl is missing; updates\.provenance: required refuses/,
      );
    }
  } finally {
    server.close();
  }
});

test('optional: a provenance that is present but bad is refused; an oversized one too', async () => {
  let body = 'not json\n';
  const server = createServer((_req, res) => {
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/a-x-1.0.tar.gz`;
  const c = {
    url,
    file: 'a-x-1.0.tar.gz',
    sha256: '0'.repeat(64),
    trusted: { keys: [], revoked: {} } as any,
    timeouts: { connectMs: 5000, idleMs: 5000, totalMs: 10_000 },
    log: silentLogger,
    updates: { provenance: 'optional' as const, provenanceSource: { repo: 'o/n' } },
  };
  try {
    for (const [text, pattern] of [
      ['not json\n', /is not a valid provenance signed by a trusted key \(line 1 is not JSON\)/],
      ['', /holds 0 envelopes/],
      [' '.repeat(MAX_PROVENANCE_BYTES + 1), /more than the 262144/],
    ] as const) {
      body = text;
      try {
        await checkProvenance(c);
        assert.unreachable(JSON.stringify(text.slice(0, 20)));
      } catch (error) {
        assert.match((error as Error).message, pattern);
      }
    }
  } finally {
    server.close();
  }
});

test.run();
