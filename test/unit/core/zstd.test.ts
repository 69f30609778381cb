// zstd for delta updates (lib/core/zstd.ts), with the real zstd on real files: the window a
// patch needs, compress and decompress with and without an old file as dictionary, a bomb stopped
// at its signed length by the kernel, and a wrong dictionary or broken bytes refused.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, VerificationError } from '../../../lib/core/errors.ts';
import { haveZstd, windowLog, zstdCompress, zstdDecompress } from '../../../lib/core/zstd.ts';
import { tmpDir } from '../../_helpers/common.ts';

let base: string;
test.before(() => {
  base = tmpDir('shipkit-zstd-');
});

const MiB = 1 << 20;
let n = 0;
/** A fresh file name in the temp folder. */
const fresh = (name: string) => path.join(base, `${++n}-${name}`);

function write(name: string, bytes: Buffer): string {
  const file = fresh(name);
  writeFileSync(file, bytes);
  return file;
}

async function compress(input: string, dict?: string): Promise<string> {
  const output = fresh('out.zst');
  await zstdCompress({
    input,
    output,
    inputBytes: statSync(input).size,
    dict,
    dictBytes: dict ? statSync(dict).size : undefined,
  });
  return output;
}

async function decompress(compressed: string, maxBytes: number, dict?: string): Promise<string> {
  const output = fresh('restored');
  await zstdDecompress({
    input: createReadStream(compressed),
    output,
    maxBytes,
    dict,
    dictBytes: dict ? statSync(dict).size : undefined,
  });
  return output;
}

async function refused(run: Promise<unknown>, message: RegExp): Promise<void> {
  try {
    await run;
  } catch (e) {
    assert.instance(e, VerificationError);
    assert.match((e as Error).message, message);
    return;
  }
  assert.unreachable('should have been refused');
}

/** 1 MiB of random bytes (which zstd cannot shrink alone) and a copy with a few changes. */
function oldAndNew(): { old: Buffer; changed: Buffer } {
  const old = randomBytes(MiB);
  const changed = Buffer.concat([old.subarray(0, 300_000), Buffer.from('inserted'), old.subarray(300_000)]);
  changed.write('patched', 700_000);
  return { old, changed };
}

test('windowLog: at least 2^20, enough for dictionary and output together, at most 2^31', () => {
  assert.is(windowLog(0, 0), 20);
  assert.is(windowLog(0, MiB), 20);
  assert.is(windowLog(0, MiB + 1), 21);
  assert.is(windowLog(MiB, MiB), 21);
  assert.is(windowLog(MiB, MiB + 1), 22);
  assert.is(windowLog(3 * MiB, 0), 22);
  assert.is(windowLog(1 << 30, 1 << 30), 31);
  assert.is(windowLog(2 ** 40, 2 ** 40), 31, 'capped at what zstd takes');
});

test('haveZstd: looks on the PATH given; a missing zstd is a ConfigError, not a crash', async () => {
  assert.ok(haveZstd(), 'zstd is installed here');
  assert.not.ok(haveZstd(base));
  assert.not.ok(haveZstd(''));
  const saved = process.env.PATH;
  process.env.PATH = base;
  try {
    await zstdCompress({ input: fresh('none'), output: fresh('none.zst'), inputBytes: 0 });
    assert.unreachable('should have been refused');
  } catch (e) {
    assert.instance(e, ConfigError);
    assert.match((e as Error).message, /zstd is not installed/);
  } finally {
    process.env.PATH = saved;
  }
});

test('compress and decompress without a dictionary give the bytes back', async () => {
  const text = Buffer.from('a line of a release file, repeated\n'.repeat(20_000));
  const input = write('plain', text);
  const packed = await compress(input);
  assert.ok(statSync(packed).size < text.length / 20, 'compressed');
  assert.equal(readFileSync(await decompress(packed, text.length)), text);
  // An empty file too.
  const empty = write('empty', Buffer.alloc(0));
  assert.is(readFileSync(await decompress(await compress(empty), 0)).length, 0);
});

test('--patch-from: the new file from the old one in a few bytes, and back', async () => {
  const { old, changed } = oldAndNew();
  const oldFile = write('old', old);
  const patch = await compress(write('new', changed), oldFile);
  assert.ok(statSync(patch).size < 10_000, `a patch of ${statSync(patch).size} bytes`);
  assert.equal(readFileSync(await decompress(patch, changed.length, oldFile)), changed);
});

test('a patch applied with the wrong dictionary, or none, is refused', async () => {
  const { old, changed } = oldAndNew();
  const patch = await compress(write('new', changed), write('old', old));
  const wrong = write('wrong', randomBytes(MiB));
  await refused(decompress(patch, changed.length, wrong), /does not decompress within its signed length/);
  const almost = Buffer.from(old);
  almost.write('one change', 500_000);
  await refused(decompress(patch, changed.length, write('almost', almost)), /does not decompress/);
  await refused(decompress(patch, changed.length), /does not decompress/);
});

test('broken bytes are refused', async () => {
  const garbage = write('garbage.zst', randomBytes(4096));
  await refused(decompress(garbage, MiB), /does not decompress within its signed length of 1048576 bytes: ./);
  const good = readFileSync(await compress(write('plain', Buffer.from('x'.repeat(100_000)))));
  await refused(decompress(write('cut.zst', good.subarray(0, good.length - 4)), 100_000), /does not decompress/);
});

/** `bytes` compressed by the zstd program with a 128 KiB window, as a hostile publisher may. */
function bombOf(bytes: Buffer): string {
  const input = write('bomb-input', bytes);
  const output = fresh('bomb.zst');
  const run = spawnSync('zstd', ['-q', '-f', '-1', '--zstd=wlog=17', input, '-o', output], { encoding: 'utf8' });
  assert.is(run.status, 0, run.stderr);
  return output;
}

test('a bomb stops at the signed length: 8 MiB of zeros (or of text) capped at 1 MiB', async () => {
  const pattern = Buffer.alloc(8 * MiB, 'bomb ');
  for (const content of [Buffer.alloc(8 * MiB), pattern]) {
    const bomb = bombOf(content);
    assert.ok(statSync(bomb).size < 4096, 'tiny compressed');
    const output = fresh('bomb.out');
    // The window fits in memory: the kernel's cap on the output file is what stops it.
    await refused(
      zstdDecompress({ input: createReadStream(bomb), output, maxBytes: MiB }),
      /does not decompress within its signed length of 1048576 bytes: .*SIGXFSZ/,
    );
    const left = existsSync(output) ? statSync(output).size : 0;
    assert.ok(left <= MiB, `the output stopped at ${left} bytes`);
    // A KiB short is refused too; the exact length goes through.
    await refused(decompress(bomb, 8 * MiB - 1024), /signed length of 8387584 bytes/);
    assert.equal(readFileSync(await decompress(bomb, 8 * MiB)), content);
  }
});

test('a frame whose window is larger than the signed length is refused before it is decoded', async () => {
  const zeros = write('zeros', Buffer.alloc(8 * MiB));
  const bomb = await compress(zeros);
  assert.ok(statSync(bomb).size < 4096, 'tiny compressed');
  await refused(decompress(bomb, MiB), /signed length of 1048576 bytes: .*Frame requires too much memory/);
});

test.run();
