// YAML config loading (lib/core/yaml-config.ts): errors name FILE:LINE and the key path; env:/file:/literal
// secrets and their errors. Files are real files in a temp folder.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  checkKnownKeys,
  configError,
  formatKeyPath,
  getKey,
  loadYamlFile,
  parseYamlText,
  type ConfigDoc,
} from '../../../lib/core/yaml-config.ts';
import { resolveSecret } from '../../../lib/core/secrets.ts';
import { ConfigError } from '../../../lib/core/errors.ts';
import { tmpDir } from '../../_helpers/common.ts';

const dir = tmpDir();

function write(name: string, text: string): string {
  const file = path.join(dir, name);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, text);
  return file;
}

async function rejectsConfig(promise: Promise<unknown> | (() => unknown), pattern: RegExp): Promise<ConfigError> {
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (error) {
    assert.instance(error, ConfigError, `got ${(error as Error)?.name}: ${(error as Error)?.message}`);
    assert.match((error as Error).message, pattern);
    return error as ConfigError;
  }
  assert.unreachable(`expected a ConfigError matching ${pattern}`);
  throw new Error('unreachable');
}

const SAMPLE = `# shipkit test config
listen: 127.0.0.1:9000
server:
  port: "eighty"
  name: main
  retries: 3
  tags: [a, 1, c]
items:
  - first
  - 2
flags:
  verbose: yes
  dry: true
weird: .inf
empty:
`;

let doc: ConfigDoc;

test('loads a file; data is plain JS', async () => {
  const file = write('sample.yml', SAMPLE);
  doc = await loadYamlFile(file);
  assert.is(doc.file, file);
  const data = doc.data as Record<string, any>;
  assert.is(data.listen, '127.0.0.1:9000');
  assert.is(data.server.retries, 3);
  assert.equal(data.items, ['first', 2]);
  assert.is(data.flags.verbose, 'yes', 'YAML 1.2: yes is a string, not a boolean');
  assert.is(data.empty, null);
});

// [keyPath, type, expected value] for keys of the right type
const okKeys: Array<[Array<string | number>, Parameters<typeof getKey>[2], unknown]> = [
  [['listen'], 'string', '127.0.0.1:9000'],
  [['server', 'name'], 'string', 'main'],
  [['server', 'retries'], 'number', 3],
  [['flags', 'dry'], 'boolean', true],
  [['items'], 'array', ['first', 2]],
  [['server'], 'object', { port: 'eighty', name: 'main', retries: 3, tags: ['a', 1, 'c'] }],
  [['items', 0], 'string', 'first'],
  [['missing'], 'string', undefined],
  [['empty'], 'string', undefined],
  [['server', 'missing', 'deeper'], 'number', undefined],
];

for (const [keyPath, type, want] of okKeys) {
  test(`getKey ${formatKeyPath(keyPath)} as ${type}`, () => {
    assert.equal(getKey(doc, keyPath, type), want);
  });
}

// [keyPath, type, required, line, message]
const badKeys: Array<[Array<string | number>, Parameters<typeof getKey>[2], boolean, number, RegExp]> = [
  [['server', 'port'], 'number', false, 4, /server\.port: must be a number, got string "eighty"\.$/],
  [['listen'], 'number', false, 2, /listen: must be a number, got string/],
  [['server'], 'string', false, 3, /server: must be a string, got a mapping\./],
  [['items'], 'object', false, 8, /items: must be a mapping \(key: value\), got a list\./],
  [['items'], 'string[]', false, 8, /items: must be a list of strings, got a list\./],
  [['items', 1], 'string', false, 10, /items\[1\]: must be a string, got number 2\./],
  [['server', 'tags'], 'string[]', false, 7, /server\.tags: must be a list of strings/],
  [['flags', 'verbose'], 'boolean', false, 12, /flags\.verbose: must be true or false, got string "yes"\./],
  [['weird'], 'number', false, 14, /weird: must be a number, got number null\.|weird: must be a number/],
  [['missing'], 'string', true, 2, /missing: is required and must be a string\./],
  [['server', 'missing'], 'number', true, 3, /server\.missing: is required and must be a number\./],
  [['empty'], 'string', true, 15, /empty: is required/],
];

for (const [keyPath, type, required, line, message] of badKeys) {
  test(`getKey ${formatKeyPath(keyPath)} as ${type}${required ? ' (required)' : ''} → sample.yml:${line}`, async () => {
    const error = await rejectsConfig(() => getKey(doc, keyPath, type, { required }), message);
    assert.ok(error.message.startsWith(`${doc.file}:${line}: ${formatKeyPath(keyPath)}: `), error.message);
  });
}

test('checkKnownKeys names the unknown key, its line and the allowed ones', async () => {
  checkKnownKeys(doc, ['server'], ['port', 'name', 'retries', 'tags']);
  const error = await rejectsConfig(
    () => checkKnownKeys(doc, ['server'], ['port', 'name', 'tags']),
    /unknown key; expected one of: port, name, tags\./,
  );
  assert.ok(error.message.startsWith(`${doc.file}:6: server.retries: `), error.message);
  const top = await rejectsConfig(() => checkKnownKeys(doc, [], ['listen', 'server']), /unknown key/);
  assert.ok(top.message.startsWith(`${doc.file}:8: items: `), top.message);
  // Not a mapping: nothing to check (the type check reports it).
  checkKnownKeys(doc, ['items'], []);
  checkKnownKeys(doc, ['missing'], []);
});

test('configError and locate: nearest existing parent; top level; formatKeyPath', () => {
  assert.is(doc.locate(['server', 'name']), `${doc.file}:5`);
  assert.is(doc.locate(['server', 'nope', 'x']), `${doc.file}:3`);
  assert.is(doc.locate(['items', 5]), `${doc.file}:8`);
  assert.is(doc.locate([]), `${doc.file}:2`);
  assert.is(configError(doc, [], 'bad').message, `${doc.file}:2: (top level): bad`);
  assert.is(formatKeyPath(['repos', 'octo/site', 'upload', 0, 'from']), 'repos.octo/site.upload[0].from');
});

// [label, text, line, message]
const syntaxErrors: Array<[string, string, number, RegExp]> = [
  ['unclosed flow list', 'a: 1\nb: [1, 2\nc: 3\n', 3, /Flow sequence|\]/],
  [
    'duplicate key',
    'listen: a\ndata: b\nlisten: c\n',
    3,
    /listen: is given twice in the same block \(first on line 1\); merge/,
  ],
  [
    'an updates: snippet appended',
    'updates:\n  server: "https://u/"\napp:\n  exec: x\nupdates:\n  report: https://r/\n',
    5,
    /updates: is given twice in the same block \(first on line 1\)/,
  ],
  [
    'nested duplicate',
    'app:\n  env:\n    A: 1\n    A: 2\n',
    4,
    /A: is given twice in the same block \(first on line 3\)/,
  ],
  ['tab indentation', 'a:\n\t- x\n', 2, /Tabs/],
  ['unterminated quote', 'a: 1\nb: "oops\n', 3, /quote/],
  ['compact nested mapping', 'a: 1\n\nb: c: d\n', 3, /[Nn]ested mappings/],
  ['two documents', 'a: 1\n---\nb: 2\n', 2, /multiple documents/],
];

for (const [label, text, line, message] of syntaxErrors) {
  test(`YAML syntax error (${label}) → FILE:${line}`, async () => {
    const file = write(`syntax-${label.replace(/\W+/g, '-')}.yml`, text);
    const error = await rejectsConfig(loadYamlFile(file), message);
    assert.ok(error.message.startsWith(`${file}:${line}: `), error.message);
    assert.not.match(error.message, /\n/, 'one line');
  });
}

test('alias bomb and unresolved alias are ConfigErrors naming the file', async () => {
  const levels = ['a: &a [x, x, x, x, x, x, x, x, x]'];
  for (let i = 1; i < 8; i++) {
    const prev = String.fromCharCode(96 + i);
    const name = String.fromCharCode(97 + i);
    levels.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(', ')}]`);
  }
  const bomb = write('bomb.yml', `${levels.join('\n')}\n`);
  const started = Date.now();
  await rejectsConfig(loadYamlFile(bomb), new RegExp(`^${bomb}: .*alias`, 'i'));
  assert.ok(Date.now() - started < 5000, 'refused quickly');
  const unresolved = write('unresolved.yml', 'a: *nope\n');
  await rejectsConfig(loadYamlFile(unresolved), new RegExp(`^${unresolved}: .*nope`));
});

test('missing file, a folder, an empty file, an over-large file', async () => {
  await rejectsConfig(loadYamlFile(path.join(dir, 'nope.yml')), /Config file .*nope\.yml does not exist\./);
  await rejectsConfig(loadYamlFile(dir), new RegExp(`^Config file ${dir} is a folder; give the file inside it\\.$`));
  const empty = await loadYamlFile(write('empty.yml', ''));
  assert.equal(empty.data, {});
  const comments = await loadYamlFile(write('comments.yml', '# nothing here\n'));
  assert.equal(comments.data, {});
  await rejectsConfig(
    () => parseYamlText(`a: "${'x'.repeat(1 << 20)}"\n`, 'big.yml'),
    /^big\.yml: the file is larger than 1 MB/,
  );
});

// Secrets: [label, value, env, expected secret | error pattern]
const secretFile = write('secrets/webhook.txt', '  hunter2-from-file  \nsecond line ignored\n');
write('secrets/empty.txt', '\n');
write('secrets/blank.txt', '   \n');
const secretCases: Array<[string, string, NodeJS.ProcessEnv, string | RegExp]> = [
  ['literal', 'plain-literal-secret', {}, 'plain-literal-secret'],
  ['literal with a colon', 'http:not-a-prefix', {}, 'http:not-a-prefix'],
  ['env: set', 'env:HOOK_SECRET', { HOOK_SECRET: 'from-env' }, 'from-env'],
  [
    'env: missing',
    'env:HOOK_SECRET',
    {},
    /^shipkit\.yml:4: secret: environment variable HOOK_SECRET is not set or empty\.$/,
  ],
  ['env: empty', 'env:HOOK_SECRET', { HOOK_SECRET: '' }, /environment variable HOOK_SECRET is not set or empty/],
  ['env: no name', 'env:', {}, /is not set or empty/],
  ['file: relative to baseDir, first line trimmed', 'file:secrets/webhook.txt', {}, 'hunter2-from-file'],
  ['file: absolute', `file:${secretFile}`, {}, 'hunter2-from-file'],
  ['file: missing', 'file:secrets/nope.txt', {}, /cannot read secret file .*secrets\/nope\.txt \(ENOENT\)/],
  ['file: empty', 'file:secrets/empty.txt', {}, /secret file .*empty\.txt is empty\./],
  ['file: blank line', 'file:secrets/blank.txt', {}, /secret file .*blank\.txt is empty\./],
  ['file: a folder', 'file:secrets', {}, /cannot read secret file .*secrets \(EISDIR\)/],
  ['empty literal', '', {}, /the secret is empty/],
];

for (const [label, value, env, want] of secretCases) {
  test(`resolveSecret ${label}`, async () => {
    const run = resolveSecret(value, { env, baseDir: dir, where: 'shipkit.yml:4: secret' });
    if (typeof want === 'string') return assert.is(await run, want);
    const error = await rejectsConfig(run, want);
    assert.ok(error.message.startsWith('shipkit.yml:4: secret: '), error.message);
    assert.not.match(error.message, /hunter2/, 'never shows a secret');
  });
}

test('resolveSecret defaults: process.env and the current folder', async () => {
  process.env.SHIPKIT_TEST_SECRET_X = 'xyz';
  try {
    assert.is(await resolveSecret('env:SHIPKIT_TEST_SECRET_X'), 'xyz');
  } finally {
    delete process.env.SHIPKIT_TEST_SECRET_X;
  }
  await rejectsConfig(resolveSecret('env:SHIPKIT_TEST_SECRET_X'), /^secret: environment variable/);
});

test.run();
