// @deno
// upload to s3://bucket/prefix against s3rver on loopback, with the real AWS SDK (aws-chunked
// bodies and flexible checksums switched to WHEN_REQUIRED; Content-MD5 instead).
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { freePort, runScript, tmpDir } from '../../_helpers/common.ts';
import { startS3rver } from '../../fixtures/s3rver.ts';
import { parseTarget } from '../../../lib/stages/upload/targets.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const s3 = await import('@aws-sdk/client-s3');

const s3rver = await startS3rver('site');
const { endpoint } = s3rver;
const client = new s3.S3Client({
  region: 'us-east-1',
  endpoint,
  forcePathStyle: true,
  credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
});

const awsEnv = {
  AWS_ACCESS_KEY_ID: 'S3RVER',
  AWS_SECRET_ACCESS_KEY: 'S3RVER',
  AWS_REGION: 'us-east-1',
  AWS_CONFIG_FILE: '/nonexistent',
  AWS_SHARED_CREDENTIALS_FILE: '/nonexistent',
  AWS_PROFILE: undefined,
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
};
const upload = (args: string[], env: Record<string, string | undefined> = {}) =>
  runScript('upload', args, { env: { ...awsEnv, ...env }, timeoutMs: 60_000 });

const big = randomBytes(17 * 1024 * 1024); // over the 16 MiB multipart threshold: 8 + 8 + 1 MiB parts

function site(): string {
  const out = path.join(tmpDir('shipkit-site-'), 'out');
  mkdirSync(path.join(out, 'a b', 'css'), { recursive: true });
  writeFileSync(path.join(out, 'index.html'), '<h1>hi</h1>\n');
  writeFileSync(path.join(out, 'a b', 'css', 'site.css'), 'body{}\n');
  writeFileSync(path.join(out, 'a b', 'ünïcødé 名前.txt'), 'unicode\n');
  writeFileSync(path.join(out, 'big.bin'), big);
  symlinkSync('/etc/passwd', path.join(out, 'passwd'));
  symlinkSync('index.html', path.join(out, 'home.html'));
  return out;
}

async function keys(bucket: string, prefix = ''): Promise<string[]> {
  const page = await client.send(new s3.ListObjectsV2Command({ Bucket: bucket, Prefix: prefix || undefined }));
  return (page.Contents ?? []).map((o) => o.Key!).sort();
}
async function get(key: string) {
  const answer = await client.send(new s3.GetObjectCommand({ Bucket: 'site', Key: key }));
  return {
    body: Buffer.from(await answer.Body!.transformToByteArray()),
    type: answer.ContentType,
    cache: answer.CacheControl,
  };
}

test('sync uploads everything once (multipart for the big file), then only what changed', async () => {
  const out = site();
  const first = await upload([
    '--from',
    out,
    '--to',
    's3://site/www',
    '--endpoint',
    endpoint,
    '--cache-control',
    'public, max-age=60',
    '--json',
  ]);
  assert.is(first.exitCode, 0, first.stderr);
  const [r1] = JSON.parse(first.stdout);
  assert.equal([r1.uploaded, r1.unchanged, r1.deleted], [5, 0, 0]);
  assert.match(first.stderr, /skipping passwd: symbolic link to \/etc\/passwd, outside the source folder/);
  assert.equal(await keys('site', 'www/'), [
    'www/a b/css/site.css',
    'www/a b/ünïcødé 名前.txt',
    'www/big.bin',
    'www/home.html',
    'www/index.html',
  ]);
  const index = await get('www/index.html');
  assert.is(index.body.toString(), '<h1>hi</h1>\n');
  assert.is(index.type, 'text/html; charset=utf-8');
  assert.is(index.cache, 'public, max-age=60');
  assert.is((await get('www/a b/css/site.css')).type, 'text/css; charset=utf-8');
  assert.is(
    (await get('www/home.html')).body.toString(),
    '<h1>hi</h1>\n',
    'a link inside the folder is uploaded as its content',
  );
  const bigObject = await get('www/big.bin');
  assert.is(createHash('sha256').update(bigObject.body).digest('hex'), createHash('sha256').update(big).digest('hex'));
  assert.is(bigObject.type, 'application/octet-stream');

  const second = await upload(['--from', out, '--to', 's3://site/www/', '--endpoint', endpoint, '--json']);
  assert.is(second.exitCode, 0, second.stderr);
  const [r2] = JSON.parse(second.stdout);
  assert.equal([r2.uploaded, r2.unchanged], [0, 5]);
  assert.is(r2.requests, 1, 'an unchanged sync costs one list request');

  writeFileSync(path.join(out, 'index.html'), '<h1>changed, same length?</h1>\n');
  const third = await upload(['--from', out, '--to', 's3://site/www', '--endpoint', endpoint]);
  assert.is(third.exitCode, 0, third.stderr);
  // index.html and home.html (a link to it) changed: one list request and two puts.
  assert.match(third.stdout, /s3:\/\/site\/www\/: uploaded 2, unchanged 3, deleted 0 \(3 requests\)/);
  assert.is((await get('www/index.html')).body.toString(), '<h1>changed, same length?</h1>\n');
});

test('same size, different content is still uploaded (MD5 compare)', async () => {
  const out = path.join(tmpDir('shipkit-site-'), 'out');
  mkdirSync(out);
  writeFileSync(path.join(out, 'a.txt'), 'aaaa');
  assert.is((await upload(['--from', out, '--to', 's3://site/md5', '--endpoint', endpoint])).exitCode, 0);
  writeFileSync(path.join(out, 'a.txt'), 'bbbb');
  const r = await upload(['--from', out, '--to', 's3://site/md5', '--endpoint', endpoint]);
  assert.match(r.stdout, /uploaded 1, unchanged 0/);
  assert.is((await get('md5/a.txt')).body.toString(), 'bbbb');
});

test('--delete removes extras under the prefix only; --dry-run changes nothing', async () => {
  const out = path.join(tmpDir('shipkit-site-'), 'out');
  mkdirSync(out);
  writeFileSync(path.join(out, 'keep.txt'), 'keep\n');
  await client.send(new s3.PutObjectCommand({ Bucket: 'site', Key: 'del/stale.txt', Body: 'stale' }));
  await client.send(new s3.PutObjectCommand({ Bucket: 'site', Key: 'delete-me-not.txt', Body: 'outside the prefix' }));
  let r = await upload(['--from', out, '--to', 's3://site/del', '--endpoint', endpoint]);
  assert.is(r.exitCode, 0, r.stderr);
  assert.equal(await keys('site', 'del/'), ['del/keep.txt', 'del/stale.txt']);
  r = await upload(['--from', out, '--to', 's3://site/del', '--endpoint', endpoint, '--delete', '--dry-run']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /would upload 0, unchanged 1, deleted 1/);
  assert.equal(await keys('site', 'del/'), ['del/keep.txt', 'del/stale.txt']);
  r = await upload(['--from', out, '--to', 's3://site/del', '--endpoint', endpoint, '--delete']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.equal(await keys('site', 'del/'), ['del/keep.txt']);
  assert.ok((await keys('site')).includes('delete-me-not.txt'));
});

test('missing bucket, wrong credentials and an unreachable endpoint are clear errors', async () => {
  const out = path.join(tmpDir('shipkit-site-'), 'out');
  mkdirSync(out);
  writeFileSync(path.join(out, 'a.txt'), 'a');
  let r = await upload(['--from', out, '--to', 's3://no-such-bucket/x', '--endpoint', endpoint]);
  assert.is(r.exitCode, 1);
  assert.match(
    r.stderr,
    /S3 bucket "no-such-bucket" does not exist at http:\/\/127\.0\.0\.1:\d+; create it or fix the bucket name/,
  );
  r = await upload(['--from', out, '--to', 's3://site/x', '--endpoint', endpoint], {
    AWS_ACCESS_KEY_ID: 'WRONG',
    AWS_SECRET_ACCESS_KEY: 'WRONG',
  });
  assert.is(r.exitCode, 1);
  assert.match(r.stderr, /refused the credentials \(InvalidAccessKeyId\); check AWS_ACCESS_KEY_ID/);
  // (s3rver does not check SigV4 signatures, so a wrong secret with a known key id passes there.)
  r = await upload(['--from', out, '--to', 's3://site/x', '--endpoint', `http://127.0.0.1:${await freePort()}`]);
  assert.is(r.exitCode, 1);
  assert.match(r.stderr, /Could not reach S3 at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
  assert.equal(await keys('site', 'x/'), [], 'nothing written');
  r = await upload(['--from', out, '--to', 's3://b!d/x']);
  assert.is(r.exitCode, 2);
  assert.match(r.stderr, /Invalid S3 bucket name/);
  r = await upload(['--from', out, '--to', 's3://site/x', '--endpoint', 'ftp://127.0.0.1/']);
  assert.is(r.exitCode, 2);
  assert.match(r.stderr, /Invalid S3 endpoint "ftp:\/\/127\.0\.0\.1\/": it must be an http:\/\/ or https:\/\/ URL/);
});

test('upload REPO with an s3 mapping and cache_control from shipkit.yml', async () => {
  const data = tmpDir('shipkit-data-');
  const work = path.join(data, 'repos', 'octo__site');
  mkdirSync(path.join(work, 'public'), { recursive: true });
  writeFileSync(path.join(work, 'public', 'app.js'), 'console.log(1)\n');
  const config = path.join(data, 'shipkit.yml');
  writeFileSync(
    config,
    [
      `data: ${data}`,
      'repos:',
      '  octo/site:',
      '    upload:',
      `      - s3: { bucket: site, prefix: repo, region: us-east-1, endpoint: "${endpoint}" }`,
      '        from: public',
      '        cache_control: no-cache',
      '',
    ].join('\n'),
  );
  let r = await upload(['octo/site', '--config', config]);
  assert.is(r.exitCode, 0, r.stderr);
  const object = await get('repo/app.js');
  assert.equal(
    [object.body.toString(), object.type, object.cache],
    ['console.log(1)\n', 'text/javascript; charset=utf-8', 'no-cache'],
  );

  writeFileSync(
    config,
    [
      `data: ${data}`,
      'repos:',
      '  octo/site:',
      '    upload:',
      '      - s3: { bucket: site, prefix: repo, acl: public }',
      '        from: public',
      '',
    ].join('\n'),
  );
  r = await upload(['octo/site', '--config', config]);
  assert.is(r.exitCode, 2);
  assert.match(r.stderr, /shipkit\.yml:5: repos\.octo\/site\.upload\[0\]\.s3\.acl: unknown key/);
});

test('uploadFiles (release publish): only the listed files, endpoint from AWS_ENDPOINT_URL_S3', async () => {
  const { uploadFiles } = await import('../../../lib/stages/upload/index.ts');
  const { silentLogger } = await import('../../../lib/core/log.ts');
  Object.assign(process.env, {
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_CONFIG_FILE: '/nonexistent',
    AWS_SHARED_CREDENTIALS_FILE: '/nonexistent',
  });
  const stage = tmpDir('shipkit-stage-');
  for (const name of ['app-1.0.tar.gz', 'app-1.0.tar.gz.sig', 'VERSION', 'unlisted.txt'])
    writeFileSync(path.join(stage, name), `${name}\n`);
  await client.send(new s3.PutObjectCommand({ Bucket: 'site', Key: 'rel/app-0.9.tar.gz', Body: 'older release' }));
  const env = { ...process.env, AWS_ENDPOINT_URL_S3: endpoint };
  const result = await uploadFiles({
    from: stage,
    to: 's3://site/rel',
    files: ['app-1.0.tar.gz', 'app-1.0.tar.gz.sig'],
    log: silentLogger,
    env,
  });
  assert.is(result.uploaded, 2);
  await uploadFiles({ from: stage, to: 's3://site/rel', files: ['VERSION'], log: silentLogger, env });
  assert.equal(await keys('site', 'rel/'), [
    'rel/VERSION',
    'rel/app-0.9.tar.gz',
    'rel/app-1.0.tar.gz',
    'rel/app-1.0.tar.gz.sig',
  ]);
  const missing = await uploadFiles({
    from: stage,
    to: 's3://site/rel',
    files: ['nope.tar.gz'],
    log: silentLogger,
    env,
  }).catch((e: Error) => e);
  assert.match(String((missing as Error).message), /nope\.tar\.gz is not a file inside/);
  const escape = await uploadFiles({
    from: stage,
    to: 's3://site/rel',
    files: ['../etc/passwd'],
    log: silentLogger,
    env,
  }).catch((e: Error) => e);
  assert.match(String((escape as Error).message), /must not contain "\.\."/);
});

test('a first sync of many files: every body arrives intact with its MD5 (small files read at once, big ones streamed), one PUT each', async () => {
  const out = path.join(tmpDir('shipkit-site-'), 'out');
  const bodies = new Map<string, Buffer>();
  for (let i = 0; i < 60; i++) bodies.set(`d${i % 6}/sub${i % 2}/f${i}.html`, randomBytes(i * 37));
  bodies.set('empty.txt', Buffer.alloc(0));
  bodies.set('large.bin', randomBytes(300 * 1024)); // over the size read in one call
  for (const [rel, body] of bodies) {
    mkdirSync(path.dirname(path.join(out, rel)), { recursive: true });
    writeFileSync(path.join(out, rel), body);
  }
  const first = await upload(['--from', out, '--to', 's3://site/many', '--endpoint', endpoint, '--json']);
  assert.is(first.exitCode, 0, first.stderr);
  const [r1] = JSON.parse(first.stdout);
  assert.equal(
    [r1.uploaded, r1.unchanged, r1.requests],
    [bodies.size, 0, bodies.size + 1],
    'one list request, then one PUT per file',
  );
  assert.equal(await keys('site', 'many/'), [...bodies.keys()].map((rel) => `many/${rel}`).sort());
  for (const [rel, body] of bodies) {
    const answer = await client.send(new s3.GetObjectCommand({ Bucket: 'site', Key: `many/${rel}` }));
    assert.ok(Buffer.from(await answer.Body!.transformToByteArray()).equals(body), rel);
    assert.is(answer.ETag, `"${createHash('md5').update(body).digest('hex')}"`, rel);
  }
  writeFileSync(path.join(out, 'd0/sub0/f0.html'), 'changed');
  const second = await upload(['--from', out, '--to', 's3://site/many', '--endpoint', endpoint, '--json']);
  assert.is(second.exitCode, 0, second.stderr);
  const [r2] = JSON.parse(second.stdout);
  assert.equal([r2.uploaded, r2.unchanged, r2.requests], [1, bodies.size - 1, 2]);
});

test('a file named to upload that is not in the folder stops the upload while the remote is being listed; nothing is written', async () => {
  const { uploadTo } = await import('../../../lib/stages/upload/index.ts');
  const { silentLogger } = await import('../../../lib/core/log.ts');
  const out = path.join(tmpDir('shipkit-site-'), 'out');
  mkdirSync(out);
  writeFileSync(path.join(out, 'a.txt'), 'a');
  const env = { ...process.env, ...awsEnv, AWS_PROFILE: '' };
  const error = await uploadTo(parseTarget('s3://site/only', { endpoint }), {
    from: out,
    log: silentLogger,
    env,
    only: ['a.txt', 'nope.txt'],
  }).catch((e: Error) => e);
  assert.instance(error, Error);
  assert.match((error as Error).message, /nope\.txt is not a file in the source folder; nothing was uploaded/);
  assert.equal(await keys('site', 'only/'), []);
});

test('the S3 client shipkit makes resolves its middleware once per command and builds no log lines for a logger that drops them', async () => {
  // Speed without a timing: the SDK re-sorts its middleware stack on every send unless
  // cacheMiddleware is set, and its logger middleware filters every request's input and output
  // for a logger.info that the default logger throws away. What is sent is the same.
  const { makeS3Client } = await import('../../../lib/stages/upload/s3.ts');
  const made = await makeS3Client(
    parseTarget('s3://site/x', { endpoint }) as Parameters<typeof makeS3Client>[0],
    { ...awsEnv } as NodeJS.ProcessEnv,
  );
  try {
    const config = made.client.config as unknown as { cacheMiddleware?: boolean; logger: Record<string, unknown> };
    assert.is(config.cacheMiddleware, true);
    assert.is(config.logger.info, undefined);
    assert.type(config.logger.warn, 'function');
    await made.client.send(new made.s3.ListObjectsV2Command({ Bucket: 'site', Prefix: 'x/' }));
    await made.client.send(new made.s3.ListObjectsV2Command({ Bucket: 'site', Prefix: 'x/' }));
    const failed = await made.client
      .send(new made.s3.ListObjectsV2Command({ Bucket: 'no-such-bucket' }))
      .catch((e: Error) => e);
    assert.is((failed as Error).name, 'NoSuchBucket');
    assert.is(made.requests(), 3, 'the request counter still sees every send with the middleware cached');
  } finally {
    made.client.destroy();
  }
});

test.after(async () => {
  client.destroy();
  await s3rver.close();
});
test.run();
