// Upload entries and the stage (lib/stages/upload/index.ts), ETag comparison, rsync/ssh argument
// building. Target text is test/unit/stages/upload/targets.test.ts.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseYamlText } from '../../../../lib/core/yaml-config.ts';
import { ConfigError } from '../../../../lib/core/errors.ts';
import { silentLogger } from '../../../../lib/core/log.ts';
import { contentTypeFor } from '../../../../lib/http/content-type.ts';
import { parseTarget, planUpload, runUploadStage } from '../../../../lib/stages/upload/index.ts';
import { parseRsyncStats, rsyncArgs } from '../../../../lib/stages/upload/rsync.ts';
import { mapLimit } from '../../../../lib/core/pool.ts';
import { etagMatches, md5File, multipartEtag } from '../../../../lib/stages/upload/s3.ts';
import { listLocalFiles } from '../../../../lib/stages/upload/files.ts';
import { sshCommand } from '../../../../lib/core/ssh.ts';
import { git, tmpDir } from '../../../_helpers/common.ts';

const CONFIG = `repos:
  octo/site:
    upload:
      - rsync: deploy@web1:/var/www/site/
        from: out
        ssh_key: keys/deploy
        port: 2222
        known_hosts: ~/.ssh/known_hosts
        delete: true
      - s3: { bucket: site, prefix: www, region: eu-west-1, endpoint: "http://127.0.0.1:9000" }
        from: out
        cache_control: "public, max-age=300"
      - git: { remote: git@github.com:octo/site.git, branch: gh-pages, message: deploy }
        from: dist/site
      - s3: s3://other/p
        from: out
      - s3: { bucket: site, prefix: "", region: us-east-1 }
        from: out
`;

test('planUpload reads every documented key', () => {
  const doc = parseYamlText(CONFIG, '/etc/shipkit/shipkit.yml');
  const list = (doc.data as { repos: Record<string, { upload: Record<string, unknown>[] }> }).repos['octo/site'].upload;
  const plans = list.map((raw, i) =>
    planUpload({ raw, keyPath: ['repos', 'octo/site', 'upload', i] }, { workDir: '/data/repos/octo__site', doc }),
  );
  assert.equal(plans[0].target, { kind: 'rsync', user: 'deploy', host: 'web1', path: '/var/www/site/' });
  assert.is(plans[0].from, '/data/repos/octo__site/out');
  assert.is(plans[0].options.sshKey, '/etc/shipkit/keys/deploy');
  assert.is(plans[0].options.port, 2222);
  assert.match(plans[0].options.knownHosts!, /\/\.ssh\/known_hosts$/);
  assert.is(plans[0].options.delete, true);
  assert.equal(plans[1].target, {
    kind: 's3',
    bucket: 'site',
    prefix: 'www/',
    region: 'eu-west-1',
    endpoint: 'http://127.0.0.1:9000',
  });
  assert.is(plans[1].options.cacheControl, 'public, max-age=300');
  assert.equal(plans[2].target, { kind: 'git', remote: 'git@github.com:octo/site.git', branch: 'gh-pages' });
  assert.is(plans[2].from, '/data/repos/octo__site/dist/site');
  assert.is(plans[2].options.message, 'deploy');
  assert.equal(plans[3].target, { kind: 's3', bucket: 'other', prefix: 'p/' });
  assert.equal(
    plans[4].target,
    { kind: 's3', bucket: 'site', prefix: '', region: 'us-east-1' },
    'prefix "" (the bucket root), as docs/design.md writes it',
  );
});

const badEntries: Array<[string, RegExp]> = [
  ['- from: out', /shipkit\.yml:4: repos\.octo\/site\.upload\[0\]: needs one of rsync:, s3: or git:/],
  ['- rsync: a@b:/x\n        s3: s3://b', /give only one of rsync, s3 or git/],
  ['- rsync: a@b:/x', /needs from:/],
  ['- rsync: a@b:/x\n        from: ../escape', /upload\[0\]\.from: Invalid upload folder "\.\.\/escape"/],
  ['- rsync: a@b:/x\n        from: /etc', /from: Invalid upload folder "\/etc": it must be relative/],
  ['- rsync: s3://bkt/x\n        from: out', /upload\[0\]\.rsync: must be user@host:path/],
  ['- rsync: -oProxyCommand=x:y\n        from: out', /upload\[0\]\.rsync: Invalid host/],
  ['- rsync: a@b:/x\n        from: out\n        port: 70000', /upload\[0\]\.port: must be a port number/],
  ['- rsync: a@b:/x\n        from: out\n        delete: yes please', /upload\[0\]\.delete: must be true or false/],
  ['- rsync: a@b:/x\n        from: out\n        ssh_key: "it\'s"', /ssh_key: must not contain quotes/],
  ['- s3: { prefix: x }\n        from: out', /upload\[0\]\.s3: needs bucket/],
  ['- s3: { bucket: b, endpoint: ftp://x }\n        from: out', /s3\.endpoint: must be an http/],
  ['- s3: [1]\n        from: out', /upload\[0\]\.s3: must be s3:\/\/bucket\/prefix or a mapping/],
  ['- git: { branch: main }\n        from: out', /upload\[0\]\.git: needs remote/],
  ['- git: { remote: "ext::sh -c id" }\n        from: out', /upload\[0\]\.git: Invalid git remote/],
  ['- git: /r.git#x..y\n        from: out', /upload\[0\]\.git: Invalid git branch/],
  [
    '- rsync: a@b:/x\n        from: out\n        mode: fast',
    /shipkit\.yml:6: repos\.octo\/site\.upload\[0\]\.mode: unknown key/,
  ],
];
for (const [yaml, pattern] of badEntries) {
  test(`planUpload refuses ${JSON.stringify(yaml.split('\n')[0])}…`, () => {
    const doc = parseYamlText(`repos:\n  octo/site:\n    upload:\n      ${yaml}\n`, '/etc/shipkit/shipkit.yml');
    const raw = (doc.data as { repos: Record<string, { upload: Record<string, unknown>[] }> }).repos['octo/site']
      .upload[0];
    assert.throws(
      () => planUpload({ raw, keyPath: ['repos', 'octo/site', 'upload', 0] }, { workDir: '/w', doc }),
      (e: Error) => e instanceof ConfigError && pattern.test(e.message),
    );
  });
}

test('runUploadStage validates every entry before uploading anything', async () => {
  const dir = tmpDir('shipkit-stage-');
  mkdirSync(path.join(dir, 'work', 'out'), { recursive: true });
  writeFileSync(path.join(dir, 'work', 'out', 'a.txt'), 'a');
  await git(dir, 'init', '--quiet', '--bare', 'remote.git');
  const entries = [
    {
      raw: { git: { remote: path.join(dir, 'remote.git'), branch: 'pages' }, from: 'out' },
      keyPath: ['repos', 'o/s', 'upload', 0],
    },
    { raw: { rsync: 'host:/x', from: '../../etc' }, keyPath: ['repos', 'o/s', 'upload', 1] },
  ];
  try {
    await runUploadStage({ workDir: path.join(dir, 'work'), entries, log: silentLogger });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, ConfigError);
    assert.match((error as Error).message, /repos\.o\/s\.upload\[1\]\.from: Invalid upload folder/);
  }
  const branches = (await git(path.join(dir, 'remote.git'), 'branch', '--list')).stdout.trim();
  assert.is(branches, '', 'the first target was not touched');
});

test('runUploadStage: a missing source folder is a clear WorkError', async () => {
  const dir = tmpDir('shipkit-stage-');
  const entries = [{ raw: { git: { remote: '/nonexistent.git' }, from: 'out' }, keyPath: ['upload', 0] }];
  try {
    await runUploadStage({ workDir: dir, entries, log: silentLogger });
    assert.unreachable();
  } catch (error) {
    assert.match((error as Error).message, /The source folder .*\/out does not exist; build it first/);
  }
});

test('listLocalFiles: every file of a nested tree, sorted, links inside read through, the others skipped with a warning each', async () => {
  const root = path.join(tmpDir('shipkit-files-'), 'out');
  for (const rel of ['b/z.txt', 'b/a/deep/x.txt', 'a.txt', 'c d/é.txt']) {
    mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    writeFileSync(path.join(root, rel), rel);
  }
  symlinkSync('../../a.txt', path.join(root, 'b', 'a', 'link.txt'));
  symlinkSync('/etc/passwd', path.join(root, 'b', 'a', 'deep', 'passwd'));
  symlinkSync('missing', path.join(root, 'broken'));
  symlinkSync('b', path.join(root, 'dir-link'));
  const warnings: string[] = [];
  const log = {
    ...silentLogger,
    warn: (message: string) => {
      warnings.push(message);
    },
  };
  const files = await listLocalFiles(root, log);
  assert.equal(
    files.map((f) => [f.rel, path.relative(root, f.abs), f.size]),
    [
      ['a.txt', 'a.txt', 5],
      ['b/a/deep/x.txt', 'b/a/deep/x.txt', 14],
      ['b/a/link.txt', 'a.txt', 5],
      ['b/z.txt', 'b/z.txt', 7],
      ['c d/é.txt', 'c d/é.txt', 10],
    ],
  );
  assert.equal(warnings.sort(), [
    'skipping b/a/deep/passwd: symbolic link to /etc/passwd, outside the source folder (not followed)',
    'skipping broken: broken symbolic link',
    'skipping dir-link: symbolic link to a folder (not followed)',
  ]);
});

test('multipart ETags are recomputed with the part size the part count implies', async () => {
  const dir = tmpDir('shipkit-etag-');
  const file = path.join(dir, 'big.bin');
  const data = randomBytes(12 * 1024 * 1024 + 1);
  writeFileSync(file, data);
  const MiB = 1024 * 1024;
  const parts = [data.subarray(0, 5 * MiB), data.subarray(5 * MiB, 10 * MiB), data.subarray(10 * MiB)];
  const expected = `${createHash('md5')
    .update(Buffer.concat(parts.map((p) => createHash('md5').update(p).digest())))
    .digest('hex')}-3`;
  assert.is(await multipartEtag(file, 5 * MiB), expected);
  assert.ok(await etagMatches(file, data.length, `"${expected}"`), 'a 5 MiB-part upload from another tool matches');
  assert.ok(
    await etagMatches(file, data.length, `"${await multipartEtag(file, 8 * MiB)}"`),
    'our own 8 MiB parts match',
  );
  assert.not.ok(await etagMatches(file, data.length, `"${'0'.repeat(32)}-3"`));
  assert.ok(await etagMatches(file, data.length, `"${await md5File(file)}"`), 'a single-part ETag is the MD5');
  assert.not.ok(await etagMatches(file, data.length, '"not-an-md5-kms-etag"'));
  const small = path.join(dir, 'small.txt');
  writeFileSync(small, 'hello world');
  assert.is(await md5File(small), '5eb63bbbe01eeed093cb22bb8f5acdc3');
  assert.is(
    await multipartEtag(small, 5 * MiB),
    `${createHash('md5').update(createHash('md5').update('hello world').digest()).digest('hex')}-1`,
  );
});

test('rsync arguments: --delay-updates and --safe-links always, --delete-delay only when asked', () => {
  const target = parseTarget('deploy@web1:/var/www/');
  const base = rsyncArgs(target as never, { from: '/w/out/', log: silentLogger });
  assert.ok(base.includes('--delay-updates') && base.includes('--safe-links'));
  assert.not.ok(base.some((a) => a.startsWith('--delete')));
  assert.equal(base.slice(-2), ['/w/out/', 'deploy@web1:/var/www/']);
  const del = rsyncArgs(target as never, {
    from: '/w/out',
    log: silentLogger,
    delete: true,
    dryRun: true,
    port: 2222,
    sshKey: '/k/my key',
  });
  assert.ok(del.includes('--delete-delay') && del.includes('--dry-run'));
  // Some files only: into the folder (made when missing), never onto a file named like it.
  const one = rsyncArgs(parseTarget('deploy@web1:/srv/up/approvals') as never, {
    from: '/w/out',
    log: silentLogger,
    only: ['a.json'],
  });
  assert.equal(one.slice(-3), ['--relative', '/w/out/./a.json', 'deploy@web1:/srv/up/approvals/']);
  assert.match(del[del.indexOf('-e') + 1], /-p 2222 -i '\/k\/my key' -o IdentitiesOnly=yes/);
});

test('sshCommand quotes paths for rsync -e and GIT_SSH_COMMAND, refuses quotes', () => {
  assert.match(
    sshCommand({ knownHosts: '/a b/known_hosts' }),
    /-o 'UserKnownHostsFile=\/a b\/known_hosts' -o StrictHostKeyChecking=yes/,
  );
  assert.throws(() => sshCommand({ sshKey: "/it's/key" }), /cannot be passed to ssh/);
});

test('parseRsyncStats', () => {
  const out =
    'Number of files: 1,204 (reg: 1,100, dir: 104)\nNumber of deleted files: 3 (reg: 3)\nNumber of regular files transferred: 17\n';
  assert.equal(parseRsyncStats(out), { transferred: 17, unchanged: 1083, deleted: 3 });
});

test('contentTypeFor', () => {
  assert.is(contentTypeFor('a/index.HTML'), 'text/html; charset=utf-8');
  assert.is(contentTypeFor('x.woff2'), 'font/woff2');
  assert.is(contentTypeFor('Makefile'), 'application/octet-stream');
});

test('mapLimit never runs more than the limit at once and reports the first error', async () => {
  let running = 0;
  let peak = 0;
  await mapLimit(
    Array.from({ length: 40 }, (_, i) => i),
    4,
    async () => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, 2));
      running--;
    },
  );
  assert.ok(peak <= 4 && peak >= 2, `peak ${peak}`);
  const failed = await mapLimit([1, 2, 3], 2, async (n) => {
    if (n === 2) throw new Error('two');
  }).then(
    () => undefined,
    (e: Error) => e,
  );
  assert.match(failed?.message ?? '', /two/);
});

test.run();
