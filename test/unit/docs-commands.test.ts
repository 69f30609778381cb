// The docs' shell examples call shipkit as a user who installed the npm or Debian package can:
// only the names package.json's `bin` puts on the PATH are run bare; any other script is run as
// `shipkit NAME` (docs/install.md "The programs"). A bare `release …` is `command not found` there.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT } from '../_helpers/common.ts';
import { fencedBlocks } from '../_helpers/markdown.ts';

const SHELL_BLOCKS = new Set(['sh', 'bash', 'shell', 'console']);

/** The scripts that are not on the PATH after an install: scripts/NAME.ts without a `bin` of their own. */
function unlinkedScripts(): string[] {
  const bins = Object.keys(JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).bin);
  return readdirSync(path.join(ROOT, 'scripts'))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => f.slice(0, -3))
    .filter((name) => !bins.includes(name));
}

/**
 * The shell lines of a block where `names` are run bare: at the start of a command (a line that
 * does not continue another, or after `$ `, `&&`, `||`, `;`, `|`, `$(`, `sudo`, `runuser … --`,
 * `VAR=value`). Heredoc bodies and comments are skipped. `promptsOnly`: only `$ ` lines count
 * (a transcript in a ```text block).
 */
export function bareCalls(code: string, names: string[], { promptsOnly = false } = {}): string[] {
  const found: string[] = [];
  const name = `(?:${names.join('|')})`;
  const lead = String.raw`(?:sudo\s+(?:-\S+\s+(?:[^-\s]\S*\s+)?)*|runuser\s+(?:-\S+\s+\S+\s+)*--\s+|exec\s+|time\s+|[A-Za-z_]\w*=[^\s(]*\s+)*`;
  const atStart = new RegExp(String.raw`^\s*${lead}${name}(?:\s|$)`);
  const afterOperator = new RegExp(String.raw`(?:&&|\|\||;|\||\$\()\s*${lead}${name}(?:\s|$)`);
  let continued = false;
  let heredoc: string | undefined;
  for (const line of code.split('\n')) {
    if (heredoc !== undefined) {
      if (line.trim() === heredoc) heredoc = undefined;
      continue;
    }
    const prompt = /^\s*\$\s+(.*)$/.exec(line);
    const command = promptsOnly ? prompt?.[1] : (prompt?.[1] ?? line);
    if (command !== undefined && !command.trimStart().startsWith('#')) {
      const withoutQuotes = command.replace(/'[^']*'|"(?:[^"\\]|\\.)*"/g, '""');
      if ((!continued && atStart.test(withoutQuotes)) || afterOperator.test(withoutQuotes)) found.push(line);
      heredoc = /<<-?\s*['"]?(\w+)['"]?/.exec(command)?.[1];
    }
    continued = /\\$/.test(line);
  }
  return found;
}

test('bareCalls: a script run bare at the start of a command, not as an argument or in a heredoc', () => {
  const names = ['release', 'backup', 'audit'];
  const code = [
    'release publish x \\',
    '  release not-a-command',
    'shipkit release publish y',
    'cd a && release diff 1 2',
    'sudo -u shipkit backup --into /x',
    'runuser -u shipkit -- audit --verify',
    'FOO=1 release keys list',
    'echo "release notes" | grep release',
    'v=$(audit --json)',
    '# release in a comment',
    "cat > f.yml <<'EOF'",
    'release x',
    'EOF',
    'hook-server --config release',
    'backup',
  ].join('\n');
  assert.equal(bareCalls(code, names), [
    'release publish x \\',
    'cd a && release diff 1 2',
    'sudo -u shipkit backup --into /x',
    'runuser -u shipkit -- audit --verify',
    'FOO=1 release keys list',
    'v=$(audit --json)',
    'backup',
  ]);
  assert.equal(bareCalls('release octo/site v1.4.0: job 1\n$ cd s && release diff a b', names, { promptsOnly: true }), [
    '$ cd s && release diff a b',
  ]);
});

test('no shell example in README.md or docs/ runs a script that is not on the PATH without `shipkit`', () => {
  const names = unlinkedScripts();
  assert.ok(names.includes('release') && names.includes('backup') && !names.includes('hook-server'), names.join(' '));
  const pages = [
    'README.md',
    ...readdirSync(path.join(ROOT, 'docs'))
      .filter((f) => f.endsWith('.md'))
      .map((f) => `docs/${f}`),
  ];
  const bare: string[] = [];
  for (const page of pages) {
    for (const block of fencedBlocks(readFileSync(path.join(ROOT, page), 'utf8')).blocks) {
      const shell = SHELL_BLOCKS.has(block.info.split(/\s+/)[0]);
      for (const line of bareCalls(block.code, names, { promptsOnly: !shell }))
        bare.push(`${page} (\`\`\`${block.info} at line ${block.line}): ${line.trim()}`);
    }
  }
  assert.equal(bare, [], 'write `shipkit NAME …` (docs/install.md "The programs")');
});

test.run();
