// README.md and docs/*.md held against the checkout. The README stays the front door (at most
// 250 lines, every docs page linked from it), every relative link and #anchor resolves, and every
// example marked ```sh runnable (with the ```sh continued blocks after it, which go on in the same
// shell) runs as written: `bash -euo pipefail` in an empty temp folder, with shipkit's bins first
// on the PATH (links named after each script to bin/shipkit.cjs: of the npm package's layout
// around the one file test/run.ts bundled, or, with no bundle, of the checkout, as `npm link`
// puts them), and ends with exit 0, or with the N of a `# exit N` first line.
import { spawn } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { describeProcesses, killProcessesUsing, processesUsing } from '../fixtures/processes.ts';
import { ROOT, scriptsBundle } from '../_helpers/common.ts';
import { fencedBlocks } from '../_helpers/markdown.ts';

const MAX_README_LINES = 250;
/** docs/benchmarks.md: one current table first, the history in docs/benchmarks/history/. */
const MAX_BENCHMARKS_LINES = 400;
const SESSION_TIMEOUT_MS = 150_000;
const AT_ONCE = 3;

const pages = [
  'README.md',
  ...readdirSync(path.join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`),
];
const read = (page: string) => readFileSync(path.join(ROOT, page), 'utf8');

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to -, repeats get -1, -2 … */
export function anchorsOf(text: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const line of fencedBlocks(text).prose) {
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = m[1]
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n ? `${base}-${n}` : base);
  }
  return anchors;
}

/** The targets of the Markdown links and images in the prose (not in code). */
export function linksOf(text: string): string[] {
  const prose = fencedBlocks(text)
    .prose.join('\n')
    .replace(/(`+)[^`][\s\S]*?\1/g, '');
  return [...prose.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1]);
}

test('fencedBlocks, anchorsOf and linksOf read Markdown as GitHub does', () => {
  const text = [
    '# Zero-downtime switch (`app.listen`, `app.health`)',
    '## Notes',
    '## Notes',
    'See [a](b.md#c) and ![i](p.png), not `[x](y)`.',
    '```sh runnable',
    '# exit 2',
    '[z](w)',
    '```',
    '````md',
    '```sh',
    '````',
    '## After',
  ].join('\n');
  const { blocks } = fencedBlocks(text);
  assert.equal(
    blocks.map((b) => [b.info, b.line]),
    [
      ['sh runnable', 5],
      ['md', 9],
    ],
  );
  assert.is(blocks[0].code, '# exit 2\n[z](w)');
  assert.equal([...anchorsOf(text)], ['zero-downtime-switch-applisten-apphealth', 'notes', 'notes-1', 'after']);
  assert.equal(linksOf(text), ['b.md#c', 'p.png']);
});

test(`README.md is at most ${MAX_README_LINES} lines and links every docs page`, () => {
  const lines = read('README.md').replace(/\n$/, '').split('\n').length;
  assert.ok(lines <= MAX_README_LINES, `README.md has ${lines} lines`);
  const linked = new Set(linksOf(read('README.md')).map((l) => path.normalize(l.split('#')[0])));
  for (const page of pages.filter((p) => p.startsWith('docs/')))
    assert.ok(linked.has(page), `README.md does not link ${page}`);
});

test(`docs/benchmarks.md is at most ${MAX_BENCHMARKS_LINES} lines, its current figures the first section`, () => {
  const text = read('docs/benchmarks.md');
  const lines = text.replace(/\n$/, '').split('\n').length;
  assert.ok(lines <= MAX_BENCHMARKS_LINES, `docs/benchmarks.md has ${lines} lines`);
  assert.is(/^## (.*)$/m.exec(text)?.[1], 'Current figures');
});

test('every relative link and #anchor in README.md and docs/ resolves', () => {
  const broken: string[] = [];
  for (const page of pages) {
    for (const link of linksOf(read(page))) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(link)) continue;
      const [file, anchor] = link.split('#');
      const target = file ? path.join(path.dirname(path.join(ROOT, page)), decodeURI(file)) : path.join(ROOT, page);
      let exists = true;
      try {
        statSync(target);
      } catch {
        exists = false;
      }
      if (!exists) broken.push(`${page}: ${link} (no such file)`);
      else if (anchor && target.endsWith('.md') && !anchorsOf(readFileSync(target, 'utf8')).has(anchor))
        broken.push(`${page}: ${link} (no such heading)`);
    }
  }
  assert.equal(broken, []);
});

/** A ```sh block that no example session can run as written (it installs system-wide, needs
 * root, systemd or a second machine) names the test files that run its commands instead:
 * ```sh tested-by test/e2e/install/npm.test.ts … Each named file must exist and name the page
 * back, so a reader of either finds the other. Any other ```sh block is a defect. */
export function testedBy(info: string): string[] | undefined {
  const [lang, mark, ...files] = info.split(/\s+/);
  return lang === 'sh' && mark === 'tested-by' ? files : undefined;
}

test('every ```sh block in README.md and docs/ is run: by the doc test, or by the tests it names', () => {
  const unrun: string[] = [];
  for (const page of pages) {
    for (const block of fencedBlocks(read(page)).blocks) {
      const [lang, mark] = block.info.split(/\s+/);
      if (lang !== 'sh' || mark === 'runnable' || mark === 'continued') continue;
      const files = testedBy(block.info);
      if (!files?.length) {
        unrun.push(
          `${page}:${block.line}: \`\`\`${block.info} is run by no test (mark it runnable, or tested-by FILE…)`,
        );
        continue;
      }
      for (const file of files) {
        let text = '';
        try {
          text = read(file);
        } catch {
          unrun.push(`${page}:${block.line}: tested-by ${file}: no such file`);
          continue;
        }
        if (!text.includes(page)) unrun.push(`${page}:${block.line}: tested-by ${file}, which does not name ${page}`);
      }
    }
  }
  assert.equal(unrun, []);
});

interface Session {
  page: string;
  line: number;
  script: string;
  exit: number;
}

/** Each ```sh runnable block with the ```sh continued blocks that follow it on its page. */
function sessionsOf(page: string): Session[] {
  const sessions: Session[] = [];
  for (const block of fencedBlocks(read(page)).blocks) {
    const [lang, mark] = block.info.split(/\s+/);
    if (lang !== 'sh' || (mark !== 'runnable' && mark !== 'continued')) continue;
    if (mark === 'continued' && !sessions.length)
      throw new Error(`${page}:${block.line}: a continued block with no runnable block before it`);
    if (mark === 'runnable') sessions.push({ page, line: block.line, script: '', exit: 0 });
    const session = sessions[sessions.length - 1];
    session.script += `${block.code}\n`;
    const declared = /^# exit (\d+)\b/.exec(block.code);
    if (declared) session.exit = Number(declared[1]);
  }
  return sessions;
}

const sessions = pages.flatMap(sessionsOf);

/** A bin folder as npm makes it: `shipkit` and every script, links to `pkg`'s bin/shipkit.cjs. */
function linkedBins(dir: string, pkg: string): string {
  const bin = path.join(dir, 'bin');
  mkdirSync(bin);
  const names = Object.keys(JSON.parse(read('package.json')).bin as Record<string, string>);
  for (const name of names) symlinkSync(path.join(pkg, 'bin', 'shipkit.cjs'), path.join(bin, name));
  return bin;
}

/**
 * The npm package's files around the one file test/run.ts bundled (scriptsBundle()): bin/ and
 * dist/ copied, the rest linked to the checkout's. Its bins start the one file, not tsx.
 */
function packageOf(bundle: string, dir: string): string {
  const pkg = path.join(dir, 'package');
  for (const sub of ['bin', 'dist']) mkdirSync(path.join(pkg, sub), { recursive: true });
  copyFileSync(path.join(ROOT, 'bin', 'shipkit.cjs'), path.join(pkg, 'bin', 'shipkit.cjs'));
  for (const file of ['shipkit.mjs', 'shipkit.cjs'])
    copyFileSync(path.join(path.dirname(bundle), file), path.join(pkg, 'dist', file));
  const files = JSON.parse(read('package.json')).files as string[];
  for (const entry of files.filter((f) => !/^(bin|dist)\//.test(f)).map((f) => f.replace(/\/$/, '')))
    symlinkSync(path.join(ROOT, entry), path.join(pkg, entry));
  return pkg;
}

const base = mkdtempSync(path.join(os.tmpdir(), 'shipkit-docs-'));
process.on('exit', () => rmSync(base, { recursive: true, force: true }));
const bundle = scriptsBundle();
const bin = linkedBins(base, bundle ? packageOf(bundle, base) : ROOT);

interface Ran {
  code: number | null;
  signal: string | null;
  output: string;
  ms: number;
  leftover: string;
}

async function runSession(session: Session, index: number): Promise<Ran> {
  const dir = path.join(base, `example${index}-`); // no example's folder name begins another's
  const [work, home] = [path.join(dir, 'work'), path.join(dir, 'home')];
  mkdirSync(work, { recursive: true });
  mkdirSync(home);
  const env: NodeJS.ProcessEnv = {
    ...Object.fromEntries(
      Object.entries(process.env).filter(
        ([k]) => !k.startsWith('SHIPKIT_') && k !== 'LOG_FORMAT' && !k.startsWith('GIT_'),
      ),
    ),
    PATH: `${bin}:${process.env.PATH}`,
    HOME: home,
    NO_COLOR: '1',
    FORCE_COLOR: '0',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_AUTHOR_NAME: 'Docs',
    GIT_AUTHOR_EMAIL: 'docs@example.com',
    GIT_COMMITTER_NAME: 'Docs',
    GIT_COMMITTER_EMAIL: 'docs@example.com',
  };
  const t0 = Date.now();
  const child = spawn('bash', ['-euo', 'pipefail', '-c', session.script], {
    cwd: work,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const timer = setTimeout(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  }, SESSION_TIMEOUT_MS);
  const [code, signal] = await new Promise<[number | null, string | null]>((resolve) =>
    child.on('close', (c, s) => resolve([c, s])),
  );
  clearTimeout(timer);
  const ms = Date.now() - t0;
  // A server the example started and did not stop (or a gpg-agent it left) fails the example;
  // a few seconds are allowed for what it did stop to finish stopping. Either way it is killed.
  let left = processesUsing(dir);
  for (const until = Date.now() + 5_000; left.length && Date.now() < until; left = processesUsing(dir))
    await new Promise((r) => setTimeout(r, 100));
  const leftover = describeProcesses(left);
  await killProcessesUsing(dir);
  return { code, signal, output, ms, leftover };
}

/** All sessions, AT_ONCE at a time, started when the file loads; each test awaits its own. */
const results: Array<Promise<Ran>> = [];
{
  // The longest scripts (the walks that start servers) first, so none of them starts last.
  const waiting = sessions.map((s, i) => ({ s, i })).sort((a, b) => b.s.script.length - a.s.script.length);
  const slots: Array<(r: Ran) => void> = [];
  sessions.forEach((_, i) =>
    results.push(
      new Promise((resolve) => {
        slots[i] = resolve;
      }),
    ),
  );
  const worker = async () => {
    for (let next = waiting.shift(); next; next = waiting.shift()) slots[next.i](await runSession(next.s, next.i));
  };
  for (let k = 0; k < AT_ONCE; k++) void worker();
}

test('the programs the examples use besides shipkit are installed', () => {
  const dirs = (process.env.PATH ?? '').split(':');
  const missing = ['bash', 'git', 'gpg', 'gpgv', 'gpgconf', 'openssl', 'curl', 'jq', 'python3'].filter(
    (p) =>
      !dirs.some((d) => {
        try {
          return statSync(path.join(d, p)).isFile();
        } catch {
          return false;
        }
      }),
  );
  assert.equal(
    missing,
    [],
    `missing on the PATH: ${missing.join(' ')} (Debian: apt-get install git gnupg gpgv openssl curl jq python3)`,
  );
});

test('there are runnable examples in README.md and in docs/', () => {
  assert.ok(
    sessions.some((s) => s.page === 'README.md'),
    'README.md has no ```sh runnable block',
  );
  assert.ok(
    sessions.some((s) => s.page.startsWith('docs/')),
    'docs/ has no ```sh runnable block',
  );
});

sessions.forEach((session, i) => {
  test(`${session.page}:${session.line} runs as written (exit ${session.exit})`, async () => {
    const r = await results[i];
    console.log(`  ${session.page}:${session.line}: ${(r.ms / 1000).toFixed(1)} s`);
    assert.is(
      r.code,
      session.exit,
      `exit ${r.code}${r.signal ? ` (${r.signal})` : ''}; output:\n${r.output.slice(-4000)}`,
    );
    assert.is(r.leftover, '', `still running after the example ended (killed now):\n${r.leftover}`);
  });
});

test.run();
