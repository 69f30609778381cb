// Where a newcomer finds shipkit.example.yml (every key of shipkit.yml, commented) in the install
// they have: beside the sources in a checkout, at the npm package's root, under the Debian
// package's docs. The one file copied alone has none on disk: it carries the text
// (tools/bundle.ts), which `shipkit example-config` prints.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WorkError } from '../core/errors.ts';

declare const SHIPKIT_BUNDLED: boolean | undefined;
declare const SHIPKIT_EXAMPLE_CONFIG: string | undefined;

const NAME = 'shipkit.example.yml';
/** Where the Debian package puts it (tools/deb.ts); its docs may be left out (dpkg path-exclude in containers). */
export const DEB_EXAMPLE = `/usr/share/doc/shipkit/examples/${NAME}`;

/** The places shipkit.example.yml may be for the program running: a checkout's, the npm package's, the .deb's. */
export function exampleConfigCandidates(): string[] {
  const here = path.dirname(fileURLToPath(import.meta.url));
  // Bundled: dist/shipkit.mjs of the npm package (or a checkout), /usr/lib/shipkit/shipkit.mjs of the .deb.
  if (typeof SHIPKIT_BUNDLED !== 'undefined' && SHIPKIT_BUNDLED) return [path.resolve(here, '..', NAME), DEB_EXAMPLE];
  return [path.resolve(here, '../..', NAME)];
}

/** The installed shipkit.example.yml, or undefined when there is none on disk. */
export function exampleConfigPath({ exists = existsSync }: { exists?: (file: string) => boolean } = {}):
  string | undefined {
  return exampleConfigCandidates().find((file) => exists(file));
}

/** How to see every key, as a clause for a message: the file's path and the command that prints it. */
export function exampleConfigHint(): string {
  const file = exampleConfigPath();
  return file
    ? `every key is explained in ${file}; \`shipkit example-config > shipkit.yml\` writes a copy to start from`
    : '`shipkit example-config > shipkit.yml` writes a commented example with every key to start from';
}

/** The text of shipkit.example.yml: carried by the bundle, else read from the install. */
export async function exampleConfigText(): Promise<string> {
  if (typeof SHIPKIT_EXAMPLE_CONFIG === 'string') return SHIPKIT_EXAMPLE_CONFIG;
  const file = exampleConfigPath();
  if (!file) throw new WorkError(`${NAME} is not where it was installed (${exampleConfigCandidates().join(', ')}).`);
  return readFile(file, 'utf8');
}
