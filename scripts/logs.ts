#!/usr/bin/env -S npx tsx
// logs REPO: show, list or follow a repo's build and release jobs; logs rotate: bound disk use.
import { runCli } from '../lib/cli.ts';
import { logsCliSpec, logsMain } from '../lib/logs.ts';

await runCli(logsCliSpec, logsMain);
