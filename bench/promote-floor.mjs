// The runtime's floor for `release promote` (bench/promote.ts): what any Node program must do to
// promote with the one read the goal allows. `node promote-floor.mjs FROM_DIR TO_DIR FILE...`
// copies each file to TO_DIR hashing it on the way (1 MiB reads ahead, writes behind, fdatasync
// every 16 MiB), fsyncs the copies and the folder, and prints the first file's sha256. No keys,
// no ledger, no checks: shipkit's promote does all of this and those besides.
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import path from 'node:path';

const CHUNK = 1 << 20;
const [from, to, ...files] = process.argv.slice(2);

async function copyHashing(src, dst) {
  const hash = createHash('sha256');
  const input = await open(src, 'r');
  const output = await open(dst, 'wx');
  const buffers = Array.from({ length: 4 }, () => Buffer.allocUnsafe(CHUNK));
  const reads = [];
  const read = (k) => (reads[k] = input.read(buffers[k % 4], 0, CHUNK, k * CHUNK).then((r) => r.bytesRead));
  for (let k = 0; k < 3; k++) read(k);
  let [writing, syncing, size, synced] = [Promise.resolve(), Promise.resolve(), 0, 0];
  for (let k = 0; ; k++) {
    const n = await reads[k];
    hash.update(buffers[k % 4].subarray(0, n));
    await writing;
    writing = output.write(buffers[k % 4], 0, n, size);
    size += n;
    if (size - synced >= 16 * CHUNK) [synced, syncing] = [size, syncing.then(() => output.datasync())];
    if (n < CHUNK) break;
    read(k + 3);
  }
  await writing;
  await syncing;
  await output.sync();
  await Promise.all([output.close(), input.close()]);
  return hash.digest('hex');
}

const digests = [];
for (const file of files) digests.push(await copyHashing(path.join(from, file), path.join(to, file)));
const dir = await open(to, 'r');
await dir.sync();
await dir.close();
console.log(digests[0]);
