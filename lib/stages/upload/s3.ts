// Sync a folder to s3://bucket/prefix with @aws-sdk/client-s3 (loaded only here): list the
// remote, upload only files whose size or MD5/ETag differ (multipart ETags included), set
// Content-Type and Cache-Control, multipart for large files, optionally delete remote extras.
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs, readFileSync } from 'node:fs';
import { RemoteError, WorkError, messageOf } from '../../core/errors.ts';
import { hashFile } from '../../core/fs.ts';
import { mapLimit } from '../../core/pool.ts';
import { contentTypeFor } from '../../http/content-type.ts';
import { listLocalFiles, type LocalFile } from './files.ts';
import type { S3Target, UploadOptions, UploadResult } from './types.ts';

type S3Module = typeof import('@aws-sdk/client-s3');
type Client = InstanceType<S3Module['S3Client']>;

const MiB = 1024 * 1024;
const DEFAULT_PART_SIZE = 8 * MiB;
const DEFAULT_MULTIPART_THRESHOLD = 16 * MiB;
/**
 * Files up to this size are read in one synchronous call: for a 2 KB page that is a few µs,
 * where fs.promises.readFile costs four thread-pool round trips (open, fstat, read, close) and
 * about four times the CPU. Bigger files are read without blocking the event loop.
 */
const SMALL_FILE = 256 * 1024;

/**
 * The SDK's logger: the default (NoOpLogger) drops every line, but only after the logger
 * middleware has built each one, running the schema-based sensitive-data filter over every
 * request's input and output. Without an `info` method that per-request work is skipped
 * (`logger?.info?.(…)`); errors and warnings go nowhere, as with the default.
 */
const SDK_LOGGER = { debug() {}, warn() {}, error() {} } as unknown as NonNullable<
  import('@aws-sdk/client-s3').S3ClientConfig['logger']
>;

interface RemoteObject {
  size: number;
  etag: string;
}

export function s3Url(target: S3Target): string {
  return `s3://${target.bucket}/${target.prefix}`;
}

/** An S3 client for `target` (endpoint, region and path style from it or the environment), counting its requests. */
export async function makeS3Client(
  target: S3Target,
  env: NodeJS.ProcessEnv,
): Promise<{ s3: S3Module; client: Client; target: S3Target; requests: () => number }> {
  const s3 = await import('@aws-sdk/client-s3');
  const endpoint = target.endpoint ?? env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL;
  if (endpoint && !target.endpoint) target = { ...target, endpoint };
  let requests = 0;
  const client = new s3.S3Client({
    region: target.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1',
    ...(endpoint ? { endpoint } : {}),
    forcePathStyle: target.forcePathStyle ?? Boolean(endpoint),
    // S3-compatible servers (MinIO, Ceph, s3rver...) often reject aws-chunked bodies and the
    // newer flexible checksums; Content-MD5 below keeps the integrity check.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 3,
    requestHandler: { connectionTimeout: 10_000, requestTimeout: 300_000 },
    // The middleware stack is resolved once per command type instead of on every send (about
    // 0.15 ms of CPU per request); we add no per-command middleware and pass no per-call options.
    cacheMiddleware: true,
    logger: SDK_LOGGER,
  });
  client.middlewareStack.add(
    (next) => async (args) => {
      requests++;
      return next(args);
    },
    { step: 'finalizeRequest', name: 'shipkitRequestCounter' },
  );
  return { s3, client, target, requests: () => requests };
}

export async function uploadS3(target: S3Target, options: UploadOptions): Promise<UploadResult> {
  const where = s3Url(target);
  const partSize = options.partSize ?? DEFAULT_PART_SIZE;
  // Listed files go one at a time, in their order (release publish writes VERSION last).
  const concurrency = options.only ? 1 : (options.concurrency ?? 8);
  const log = options.log;
  // The SDK loads (and the remote is listed) while the local folder is walked.
  const localFiles = listLocalFiles(options.from, log).then((files) => selectFiles(files, options.only));
  // Its error is thrown where it is awaited below; until then it must not count as unhandled.
  localFiles.catch(() => {});
  let made: Awaited<ReturnType<typeof makeS3Client>>;
  try {
    made = await makeS3Client(target, options.env ?? process.env);
  } catch (error) {
    throw describeS3Error(error, target);
  }
  const { s3, client } = made;
  target = made.target;
  try {
    const [local, remote] = await Promise.all([localFiles, listRemote(client, s3, target)]);
    const { toUpload, unchanged } = await compareFiles(local, remote, target.prefix, concurrency, partSize);
    const localKeys = new Set(local.map((f) => target.prefix + f.rel));
    const extras =
      options.delete && !options.only ? [...remote.keys()].filter((key) => !localKeys.has(key)).sort() : [];
    log.info(
      `s3: ${where}: ${toUpload.length} to upload, ${unchanged} ` +
        `unchanged${options.delete ? `, ${extras.length} to delete` : ''}${options.dryRun ? ' (dry run)' : ''}`,
    );
    if (!options.dryRun) {
      const threshold = options.multipartThreshold ?? DEFAULT_MULTIPART_THRESHOLD;
      await mapLimit(toUpload, concurrency, async (file) => {
        const common = {
          Bucket: target.bucket,
          Key: target.prefix + file.rel,
          ContentType: contentTypeFor(file.rel),
          ...(options.cacheControl ? { CacheControl: options.cacheControl } : {}),
        };
        if (file.size >= threshold) await putMultipart(client, s3, common, file, partSize);
        else await putFile(client, s3, common, file);
        log.debug(`uploaded ${common.Key}`, { bytes: file.size });
      });
      await deleteKeys(client, s3, target, extras);
    }
    const requests = made.requests();
    log.info(
      `s3: ${where}: ${options.dryRun ? 'would upload' : 'uploaded'} ${toUpload.length}, unchanged ` +
        `${unchanged}, ${options.dryRun ? 'would delete' : 'deleted'} ${extras.length}`,
      { requests },
    );
    return {
      target: where,
      uploaded: toUpload.length,
      unchanged,
      deleted: extras.length,
      requests,
      dryRun: Boolean(options.dryRun),
    };
  } catch (error) {
    throw describeS3Error(error, target);
  } finally {
    client.destroy();
  }
}

/** Which local files differ from the remote (size, then MD5/ETag); the others are unchanged. */
async function compareFiles(
  local: LocalFile[],
  remote: Map<string, RemoteObject>,
  prefix: string,
  concurrency: number,
  partSize: number,
): Promise<{ toUpload: LocalFile[]; unchanged: number }> {
  if (remote.size === 0) return { toUpload: local, unchanged: 0 };
  const changed = await mapLimit(local, concurrency, async (file) => {
    const existing = remote.get(prefix + file.rel);
    return !(
      existing &&
      existing.size === file.size &&
      (await etagMatches(file.abs, file.size, existing.etag, partSize))
    );
  });
  // In the order of `local`: release publish's VERSION stays last.
  const toUpload = local.filter((_, i) => changed[i]);
  return { toUpload, unchanged: local.length - toUpload.length };
}

/** One PutObject with Content-MD5, so S3 rejects a body that was damaged on the way. */
async function putFile(
  client: Client,
  s3: S3Module,
  common: { Bucket: string; Key: string; ContentType: string; CacheControl?: string },
  file: LocalFile,
): Promise<void> {
  const body = file.size <= SMALL_FILE ? readFileSync(file.abs) : await fs.readFile(file.abs);
  await client.send(
    new s3.PutObjectCommand({
      ...common,
      Body: body,
      ContentLength: body.length,
      ContentMD5: createHash('md5').update(body).digest('base64'),
    }),
  );
}

async function deleteKeys(client: Client, s3: S3Module, target: S3Target, keys: string[]): Promise<void> {
  for (let i = 0; i < keys.length; i += 1000) {
    const batch = keys.slice(i, i + 1000);
    const answer = await client.send(
      new s3.DeleteObjectsCommand({
        Bucket: target.bucket,
        Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
      }),
    );
    if (answer.Errors?.length)
      throw new RemoteError(
        `S3 could not delete ${answer.Errors.length} objects from ${s3Url(target)} (first: ` +
          `${answer.Errors[0].Key}: ${answer.Errors[0].Message}).`,
      );
  }
}

function selectFiles(files: LocalFile[], only: string[] | undefined): LocalFile[] {
  if (!only) return files;
  const byName = new Map(files.map((f) => [f.rel, f]));
  return only.map((rel) => {
    const file = byName.get(rel);
    if (!file) throw new WorkError(`${rel} is not a file in the source folder; nothing was uploaded.`);
    return file;
  });
}

export async function listRemote(client: Client, s3: S3Module, target: S3Target): Promise<Map<string, RemoteObject>> {
  const objects = new Map<string, RemoteObject>();
  let token: string | undefined;
  do {
    const page = await client.send(
      new s3.ListObjectsV2Command({
        Bucket: target.bucket,
        Prefix: target.prefix || undefined,
        ContinuationToken: token,
      }),
    );
    for (const item of page.Contents ?? []) {
      if (item.Key !== undefined) objects.set(item.Key, { size: item.Size ?? -1, etag: item.ETag ?? '' });
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return objects;
}

async function putMultipart(
  client: Client,
  s3: S3Module,
  common: { Bucket: string; Key: string; ContentType: string; CacheControl?: string },
  file: LocalFile,
  partSize: number,
): Promise<void> {
  const created = await client.send(new s3.CreateMultipartUploadCommand(common));
  const uploadId = created.UploadId!;
  const handle = await fs.open(file.abs, 'r');
  try {
    const parts: Array<{ ETag?: string; PartNumber: number }> = [];
    for (let offset = 0, number = 1; offset < file.size; offset += partSize, number++) {
      const length = Math.min(partSize, file.size - offset);
      const body = Buffer.alloc(length);
      const { bytesRead } = await handle.read(body, 0, length, offset);
      if (bytesRead !== length)
        throw new WorkError(`${file.abs} changed while it was being uploaded; run the upload again.`);
      const answer = await client.send(
        new s3.UploadPartCommand({
          Bucket: common.Bucket,
          Key: common.Key,
          UploadId: uploadId,
          PartNumber: number,
          Body: body,
          ContentLength: length,
          ContentMD5: createHash('md5').update(body).digest('base64'),
        }),
      );
      parts.push({ ETag: answer.ETag, PartNumber: number });
    }
    await client.send(
      new s3.CompleteMultipartUploadCommand({
        Bucket: common.Bucket,
        Key: common.Key,
        UploadId: uploadId,
        MultipartUpload: { Parts: parts },
      }),
    );
  } catch (error) {
    await client
      .send(new s3.AbortMultipartUploadCommand({ Bucket: common.Bucket, Key: common.Key, UploadId: uploadId }))
      .catch(() => {});
    throw error;
  } finally {
    await handle.close();
  }
}

/**
 * Does the local file match the remote ETag? A plain ETag is the MD5 of the object; a
 * multipart ETag `MD5OFMD5S-N` is checked against the part sizes common uploaders use (ours,
 * 5, 8, 16, 64, 100 MiB and the size the part count implies). Other ETags (SSE-KMS, ...)
 * never match, so such objects are uploaded again.
 */
export async function etagMatches(
  file: string,
  size: number,
  etag: string,
  partSize = DEFAULT_PART_SIZE,
): Promise<boolean> {
  const clean = etag.replace(/^W\//, '').replace(/"/g, '').toLowerCase();
  if (/^[0-9a-f]{32}$/.test(clean))
    return (
      (size <= SMALL_FILE ? createHash('md5').update(readFileSync(file)).digest('hex') : await md5File(file)) === clean
    );
  const m = /^([0-9a-f]{32})-(\d+)$/.exec(clean);
  if (!m) return false;
  const parts = Number(m[2]);
  const implied = Math.ceil(size / parts);
  const candidates = [
    partSize,
    5 * MiB,
    8 * MiB,
    16 * MiB,
    64 * MiB,
    100 * MiB,
    Math.ceil(implied / MiB) * MiB,
    implied,
  ];
  for (const candidate of [...new Set(candidates)]) {
    if (candidate <= 0 || Math.ceil(size / candidate) !== parts) continue;
    if ((await multipartEtag(file, candidate)) === clean) return true;
  }
  return false;
}

export function md5File(file: string): Promise<string> {
  return hashFile(file, 'md5');
}

/** The ETag S3 gives an object uploaded in parts of `partSize`: md5(md5(part1)…md5(partN))-N. */
export async function multipartEtag(file: string, partSize: number): Promise<string> {
  const digests: Buffer[] = [];
  let part = createHash('md5');
  let inPart = 0;
  for await (const data of createReadStream(file, { highWaterMark: 1024 * 1024 })) {
    let chunk = data as Buffer;
    while (chunk.length) {
      const take = Math.min(partSize - inPart, chunk.length);
      part.update(chunk.subarray(0, take));
      inPart += take;
      chunk = chunk.subarray(take);
      if (inPart === partSize) {
        digests.push(part.digest());
        part = createHash('md5');
        inPart = 0;
      }
    }
  }
  if (inPart > 0 || digests.length === 0) digests.push(part.digest());
  return `${createHash('md5').update(Buffer.concat(digests)).digest('hex')}-${digests.length}`;
}

export function describeS3Error(error: unknown, target: S3Target): Error {
  if (error instanceof WorkError || error instanceof RemoteError) return error;
  const name = (error as { name?: string }).name ?? '';
  const code =
    (error as { code?: string; cause?: { code?: string } }).code ??
    (error as { cause?: { code?: string } }).cause?.code ??
    '';
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  const at = target.endpoint ? ` at ${target.endpoint}` : '';
  const detail = messageOf(error);
  if (name === 'NoSuchBucket')
    return new RemoteError(`S3 bucket "${target.bucket}" does not exist${at}; create it or fix the bucket name.`, {
      cause: error,
    });
  if (
    ['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'InvalidToken', 'ExpiredToken', 'InvalidClientTokenId'].includes(
      name,
    )
  ) {
    return new RemoteError(
      `S3${at} refused the credentials (${name}); check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE.`,
      { cause: error },
    );
  }
  if (name === 'CredentialsProviderError')
    return new RemoteError(
      `No AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE.`,
      { cause: error },
    );
  if (name === 'AccessDenied' || status === 403)
    return new RemoteError(
      `S3${at} denied access to bucket "${target.bucket}" (${detail}); check the credentials' permissions.`,
      { cause: error },
    );
  if (
    /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNRESET|EHOSTUNREACH/.test(`${code} ${detail}`) ||
    name === 'TimeoutError'
  ) {
    return new RemoteError(
      `Could not reach S3${at || ` for bucket "${target.bucket}"`} (${code || detail}); check the endpoint and the network.`,
      { cause: error },
    );
  }
  return new RemoteError(`Upload to ${s3Url(target)} failed: ${name ? `${name}: ` : ''}${detail}`, { cause: error });
}
