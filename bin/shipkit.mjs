#!/usr/bin/env node
// The npm bins — `shipkit` and one per script — are all links to this file, and the link's name
// picks the script (busybox style). From the npm package it runs the prebuilt dist/shipkit.mjs;
// in a checkout (`npm link`, no build needed) it runs the TypeScript sources under the checkout's
// own tsx, whatever the current folder.
import { existsSync } from 'node:fs';

if (Number(process.versions.node.split('.')[0]) < 20) {
  process.stderr.write(`shipkit needs Node.js 20 or newer, and this is ${process.version}: install a newer node and put it first on the PATH.\n`);
  process.exit(2);
}
const sources = new URL('../scripts/shipkit.ts', import.meta.url);
const tsx = new URL('../node_modules/tsx/dist/loader.mjs', import.meta.url);
if (existsSync(sources) && existsSync(tsx)) {
  await import(tsx.href);
  await import(sources.href);
} else {
  await import(new URL('../dist/shipkit.mjs', import.meta.url).href);
}
