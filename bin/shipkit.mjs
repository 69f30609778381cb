#!/usr/bin/env node
// The npm bins — `shipkit` and one per script — are all links to this file, and the link's name
// picks the script (busybox style). From the npm package it runs the prebuilt dist/shipkit.mjs;
// in a checkout (`npm link`, no build needed) it runs the TypeScript sources under the checkout's
// own tsx, whatever the current folder.
import { existsSync } from 'node:fs';
import module from 'node:module';

if (Number(process.versions.node.split('.')[0]) < 20) {
  process.stderr.write(
    `shipkit needs Node.js 20 or newer, and this is ${process.version}: install a newer node and put it first on the PATH.\n`,
  );
  process.exit(2);
}
const sources = new URL('../scripts/shipkit.ts', import.meta.url);
const tsx = new URL('../node_modules/tsx/dist/loader.mjs', import.meta.url);
if (existsSync(sources) && existsSync(tsx)) {
  await import(tsx.href);
  await import(sources.href);
} else {
  // Node ≥ 22.1 keeps V8's compiled code of the one file's entry on disk (in the OS temp folder),
  // so later starts skip its parse; Node 20 has no compile cache for ES modules. (The scripts
  // inside it are compiled from text when they run, tools/multicall-units.ts, and not cached.)
  module.enableCompileCache?.();
  await import(new URL('../dist/shipkit.mjs', import.meta.url).href);
}
