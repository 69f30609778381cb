// The runtime's floor for `release promote` (bench/promote.ts): what any Node program must do to
// promote with the one read the goal allows. `node promote-floor.mjs FROM_DIR TO_DIR FILE...`
// copies each file to TO_DIR in the kernel (fs.copyFile) while hashing the copy as it grows (1 MiB
// reads, fdatasync every 16 MiB behind them), fsyncs the copies and the folder, and prints the
// first file's sha256. No keys, no ledger, no checks: shipkit's promote does all of this and those
// besides, the same way (lib/release/publish/promote-copy.ts).
import { createHash } from 'node:crypto';
import { copyFile, open } from 'node:fs/promises';
import path from 'node:path';

const CHUNK = 1 << 20;
const [from, to, ...files] = process.argv.slice(2);

async function copyHashing(src, dst) {
  const hash = createHash('sha256');
  const output = await open(dst, 'wx+');
  let copied = false;
  const copy = copyFile(src, dst).finally(() => (copied = true));
  const buffer = Buffer.allocUnsafe(CHUNK);
  let [size, synced, syncing] = [0, 0, Promise.resolve()];
  for (;;) {
    const last = copied;
    const there = (await output.stat()).size;
    while (size < there) {
      const { bytesRead } = await output.read(buffer, 0, Math.min(CHUNK, there - size), size);
      hash.update(buffer.subarray(0, bytesRead));
      size += bytesRead;
      if (size - synced >= 16 * CHUNK) [synced, syncing] = [size, syncing.then(() => output.datasync())];
    }
    if (last) break;
    if (size >= there) await Promise.race([copy, new Promise((resolve) => setTimeout(resolve, 1))]);
  }
  await copy;
  await syncing;
  await output.sync();
  await output.close();
  return hash.digest('hex');
}

const digests = [];
for (const file of files) digests.push(await copyHashing(path.join(from, file), path.join(to, file)));
const dir = await open(to, 'r');
await dir.sync();
await dir.close();
console.log(digests[0]);
