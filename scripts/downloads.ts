#!/usr/bin/env -S node --import=data:text/javascript,const{realpathSync:r}=await/**/import(`node:fs`),{pathToFileURL:u}=await/**/import(`node:url`);await/**/import(new/**/URL(`../node_modules/tsx/dist/loader.mjs`,u(r(process.argv[1]))))
// downloads: fetch the files listed in manifest.txt (and cloudinary.txt) into downloads/.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { runCli } from '../lib/core/cli.ts';
import { downloadAll, loadEntries } from '../lib/stages/downloads.ts';
import { formatBytes } from '../lib/core/log.ts';
import { UsageError } from '../lib/core/errors.ts';

const usage = `Usage: downloads [--manifest FILE|-] [--dir DIR] [--concurrency N] [--refresh] [--json]

Fetch every "URL DEST" line of manifest.txt (and the entries of cloudinary.txt) into
downloads/DEST. Entries already fetched are skipped; --refresh revalidates them with
conditional requests. A changed "#tag" on a URL moves the previous file to downloads/old/.

Options:
  --manifest FILE     the manifest (default ./manifest.txt); "-" reads it from stdin
  --cloudinary FILE   cloudinary.txt (default: cloudinary.txt beside the manifest, if present)
  --dir DIR           where files land (default ./downloads)
  --concurrency N     downloads at once (default 4)
  --refresh           revalidate unchanged entries (If-None-Match / If-Modified-Since)
  --retries N         retries on network errors, timeouts and 5xx (default 3)
  --timeout SEC       wait this long for a response and for each piece of a body (default 30)
  --json              print the result as JSON on stdout
  -h, --help          show this help

Exit status: 0 all saved, 1 some downloads failed (the others are saved), 2 bad manifest or usage.
`;

await runCli(
  {
    name: 'downloads',
    usage,
    flags: {
      manifest: { type: 'string' },
      cloudinary: { type: 'string' },
      dir: { type: 'string' },
      refresh: { type: 'boolean' },
      json: { type: 'boolean' },
      concurrency: { type: 'integer', default: 4, max: 256 },
      retries: { type: 'integer', default: 3, min: 0, max: 20 },
      timeout: { type: 'seconds', default: 30 },
    },
    maxPositionals: 0,
  },
  async (args, log) => {
    const timeoutMs = args.timeout * 1000;
    const manifestArg: string = args.manifest ?? 'manifest.txt';
    const fromStdin = manifestArg === '-';
    const manifestFile = fromStdin ? undefined : path.resolve(manifestArg);
    const cloudinaryFile = path.resolve(
      args.cloudinary ?? path.join(manifestFile ? path.dirname(manifestFile) : '.', 'cloudinary.txt'),
    );

    if (args.manifest !== undefined && manifestFile && !existsSync(manifestFile))
      throw new UsageError(`Manifest ${manifestFile} does not exist.`);
    if (args.cloudinary !== undefined && !existsSync(cloudinaryFile))
      throw new UsageError(`${cloudinaryFile} does not exist.`);
    const entries = await loadEntries({
      manifestFile,
      manifestText: fromStdin ? readFileSync(0, 'utf8') : undefined,
      manifestSource: fromStdin ? 'stdin' : undefined,
      cloudinaryFile,
    });
    if (!entries) {
      throw new UsageError(
        `No manifest.txt (or cloudinary.txt) in ${process.cwd()}; pass --manifest FILE, or --manifest - to read one from stdin.`,
      );
    }
    if (entries.length === 0) log.warn('The manifest has no entries; nothing to fetch.');

    const summary = await downloadAll({
      dir: path.resolve(args.dir ?? 'downloads'),
      entries,
      log,
      refresh: args.refresh,
      concurrency: args.concurrency,
      retries: args.retries,
      connectTimeoutMs: timeoutMs,
      idleTimeoutMs: timeoutMs,
      progress: args.json ? undefined : process.stderr,
    });

    if (args.json) {
      process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    } else {
      for (const file of summary.files) {
        if (file.status === 'fetched')
          process.stdout.write(
            `fetched ${file.dest} (${formatBytes(file.bytes ?? 0)})${file.movedTo ? `, previous kept as ${file.movedTo}` : ''}\n`,
          );
        if (file.status === 'failed') process.stdout.write(`failed  ${file.dest}: ${file.error}\n`);
      }
      process.stdout.write(`${summary.fetched} fetched, ${summary.unchanged} unchanged, ${summary.failed} failed\n`);
    }
    return summary.failed > 0 ? 1 : 0;
  },
);
