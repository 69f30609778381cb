// Runs several uvu test files in this one process, each under its own file header, as uvu's own
// CLI does: test/run.ts gives the unit files to a few of these instead of a process each, which
// saves a Node and tsx start per file. A file's top-level code runs when it is imported, before
// any test: what a file sets for its tests (process.env) belongs in its `test.before`.
//   node --import tsx test/_helpers/unit-batch.ts FILE...
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const uvuGlobals = globalThis as { UVU_DEFER?: number; UVU_INDEX?: number; UVU_QUEUE?: unknown[][] };
uvuGlobals.UVU_DEFER = 1;
const uvu = await import('uvu');
const files = process.argv.slice(2);
for (const [index, file] of files.entries()) {
  uvuGlobals.UVU_INDEX = index;
  uvuGlobals.UVU_QUEUE!.push([path.relative(process.cwd(), file)]);
  await import(pathToFileURL(path.resolve(file)).href);
}
await uvu.exec(false);
// A file that leaves a timer or a socket behind must not keep the batch alive after its tests.
process.exit(process.exitCode ?? 0);
