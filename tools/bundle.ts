// npm run bundle: dist/shipkit.mjs, the one-file multi-call bundle (every script, litpro
// included; `node shipkit.mjs SCRIPT …` or a link named after a script), and one self-contained
// dist/NAME.mjs per script. All run with plain `node` and no node_modules, to copy onto a server.
// Heavy libraries stay behind dynamic import() and are only initialised by the code paths that
// use them. The multi-call file keeps each script and heavy library as compressed text compiled
// only when it runs (tools/multicall.ts), so that it starts about as fast as one script's file.
import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { build, type BuildOptions } from 'esbuild';
import { buildMultiCall } from './multicall.ts';

const root = path.resolve(import.meta.dirname, '..');
const pkg = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8')) as { version: string };
// Carried inside, for `shipkit example-config` where the file was copied alone (lib/config/example-config.ts).
const exampleConfig = await readFile(path.join(root, 'shipkit.example.yml'), 'utf8');
// tsx tools/bundle.ts [NAME...] [--outdir DIR]: only these scripts, into DIR (default dist/).
const argv = process.argv.slice(2);
const outdirAt = argv.indexOf('--outdir');
const outdir = outdirAt >= 0 ? path.resolve(argv.splice(outdirAt, 2)[1] ?? 'dist') : path.join(root, 'dist');
const only = argv;
const scripts = (await readdir(path.join(root, 'scripts')))
  .filter((f) => f.endsWith('.ts'))
  .map((f) => f.slice(0, -3))
  .filter((name) => !only.length || only.includes(name));
await mkdir(outdir, { recursive: true });

// Debian 12's own nodejs is 18: say so plainly instead of failing somewhere inside.
const NODE_CHECK =
  "if (Number(process.versions.node.split('.')[0]) < 20) { process.stderr.write('shipkit needs Node.js 20 or newer, and this is ' + process.version + ': install a newer node and put it first on the PATH.\\n'); process.exit(2); }\n";

for (const name of scripts) {
  const outfile = path.join(outdir, `${name}.mjs`);
  const started = Date.now();
  const common: BuildOptions = {
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    minifySyntax: true,
    legalComments: 'none',
    logLevel: 'warning',
    // SHIPKIT_MULTICALL: hook-server starts its jobs through this very file (lib/jobs/process/runner.ts).
    define: {
      SHIPKIT_VERSION: JSON.stringify(pkg.version),
      SHIPKIT_BUNDLED: 'true',
      SHIPKIT_MULTICALL: String(name === 'shipkit'),
      SHIPKIT_EXAMPLE_CONFIG: JSON.stringify(exampleConfig),
    },
    // CommonJS dependencies call require() for built-ins; give them a real one.
    banner: {
      js: `${NODE_CHECK}import { createRequire as __shipkitCreateRequire } from 'node:module'; const require = __shipkitCreateRequire(import.meta.url);`,
    },
  };
  // The multi-call file, and its CommonJS entry for the npm package's bins (bin/shipkit.cjs).
  // Nothing in the multi-call entry needs the banner's require (its units get one of their own,
  // tools/multicall-units.ts), and making it costs each start ~0.6 ms: node:module, import.meta.
  if (name === 'shipkit')
    await buildMultiCall(
      root,
      outfile,
      { ...common, banner: { js: NODE_CHECK } },
      { outfile: path.join(outdir, 'shipkit.cjs'), banner: NODE_CHECK },
    );
  else await build({ ...common, entryPoints: [path.join(root, 'scripts', `${name}.ts`)], outfile });
  for (const file of name === 'shipkit' ? [outfile, path.join(outdir, 'shipkit.cjs')] : [outfile]) {
    // scripts/NAME.ts's own first line runs it under tsx from a checkout; a bundle needs only node.
    const text = (await readFile(file, 'utf8')).replace(/^#!.*\n/, '');
    await writeFile(file, `#!/usr/bin/env node\n${text}`);
    await chmod(file, 0o755);
  }
  const size = (await readFile(outfile)).length;
  console.log(`${path.relative(root, outfile)}  ${(size / 1024).toFixed(0)} KB  ${Date.now() - started} ms`);
}
