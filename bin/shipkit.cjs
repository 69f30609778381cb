#!/usr/bin/env node
// The npm bins — `shipkit` and one per script — are all links to this file, and the link's name
// picks the script (busybox style). From the npm package it runs dist/shipkit.cjs, the one file's
// entry built as CommonJS, which reads its scripts from dist/shipkit.mjs beside it: a CommonJS
// start skips Node's ES module loader (docs/benchmarks.md). In a checkout (`npm link`, no build
// needed) it runs the TypeScript sources under the checkout's own tsx, whatever the current folder.
'use strict';
const { existsSync } = require('node:fs');
const path = require('node:path');

if (Number(process.versions.node.split('.')[0]) < 20) {
  process.stderr.write(
    `shipkit needs Node.js 20 or newer, and this is ${process.version}: install a newer node and put it first on the PATH.\n`,
  );
  process.exit(2);
}
const sources = path.join(__dirname, '../scripts/shipkit.ts');
const tsx = path.join(__dirname, '../node_modules/tsx/dist/loader.mjs');
if (existsSync(sources) && existsSync(tsx)) {
  const { pathToFileURL } = require('node:url');
  // A rejection is an uncaught error (printed, exit 1), as a top-level await's would be.
  void (async () => {
    await import(pathToFileURL(tsx).href);
    await import(pathToFileURL(sources).href);
  })();
} else {
  // Node ≥ 22.1 keeps V8's compiled code of the entry on disk (in the OS temp folder), so later
  // starts skip its parse; Node 20 has none, and is not asked (loading node:module to ask is 0.3 ms
  // of its start). (The scripts inside the one file are compiled from text when they run,
  // tools/multicall-units.ts, with a code cache of their own.)
  const [major, minor] = process.versions.node.split('.').map(Number);
  if (major > 22 || (major === 22 && minor >= 1)) require('node:module').enableCompileCache?.();
  require('../dist/shipkit.cjs');
}
