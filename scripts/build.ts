#!/usr/bin/env -S npx tsx
// build REPO: pull, downloads, install, compile, upload — one job in the repo's logs.txt.
import { runCli } from '../lib/cli.ts';
import { buildCliSpec, buildMain } from '../lib/build.ts';

await runCli(buildCliSpec, buildMain);
