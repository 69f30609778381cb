#!/usr/bin/env -S npx tsx
// release REPO --tag TAG     run the repo's release script in the checked-out tag
// release publish DIR ...    pack, sign and publish an app release for launchfit
import { runCli } from '../lib/cli.ts';

const argv = process.argv.slice(2);
if (argv[0] === 'publish') {
  const { publishCliSpec, publishMain } = await import('../lib/publish.ts');
  await runCli(publishCliSpec, publishMain, argv.slice(1));
} else {
  const { releaseCliSpec, releaseMain } = await import('../lib/release.ts');
  await runCli(releaseCliSpec, releaseMain, argv);
}
