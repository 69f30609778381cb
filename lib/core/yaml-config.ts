// YAML configuration with errors that name the file, the line and the key. Secret values
// (`env:NAME`, `file:PATH`, literal) are resolved by lib/core/secrets.ts.
import { readFile } from 'node:fs/promises';
import { isMap, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import { ConfigError, messageOf } from './errors.ts';

export type KeyPath = Array<string | number>;

export interface ConfigDoc {
  file: string;
  data: unknown;
  /** `FILE:LINE` of the key (or of the nearest parent that exists). */
  locate(keyPath: KeyPath): string;
}

export const MAX_CONFIG_BYTES = 1 << 20;

export async function loadYamlFile(file: string): Promise<ConfigDoc> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const problem =
      code === 'ENOENT' ? 'does not exist' : code === 'EISDIR' ? 'is a folder; give the file inside it' : undefined;
    throw new ConfigError(
      problem ? `Config file ${file} ${problem}.` : `Cannot read config file ${file}: ${code ?? error}.`,
      { cause: error },
    );
  }
  return parseYamlText(text, file);
}

export function parseYamlText(text: string, file: string): ConfigDoc {
  if (text.length > MAX_CONFIG_BYTES)
    throw new ConfigError(`${file}: the file is larger than 1 MB; is it the right file?`);
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const problem = document.errors[0];
  if (problem) {
    const line = problem.linePos?.[0]?.line ?? lineCounter.linePos(problem.pos[0]).line;
    if (problem.code === 'DUPLICATE_KEY') throw new ConfigError(duplicateKeyMessage(text, file, line));
    throw new ConfigError(`${file}:${line}: ${problem.message.split('\n')[0]}`);
  }
  let data: unknown;
  try {
    data = document.toJS({ maxAliasCount: 50 }) ?? {};
  } catch (error) {
    // An unresolved alias or an alias bomb only shows up here, as a ReferenceError.
    throw new ConfigError(`${file}: ${messageOf(error)}`, { cause: error });
  }
  return { file, data, locate: (keyPath) => `${file}:${lineOf(document, lineCounter, keyPath)}` };
}

/** `FILE:LINE: updates: is given twice (first on line N); …`, as a snippet appended to a file makes it. */
function duplicateKeyMessage(text: string, file: string, line: number): string {
  const lines = text.split('\n');
  const [, indent = '', key = ''] = /^(\s*)([^:#]+?)\s*:/.exec(lines[line - 1] ?? '') ?? [];
  const first = lines
    .slice(0, line - 1)
    .findIndex((l) => l.startsWith(`${indent}${key}:`) || l === `${indent}${key} :`);
  const where = first >= 0 ? ` (first on line ${first + 1})` : '';
  return (
    `${file}:${line}: ${key || 'a key'}: is given twice in the same block${where}; merge the two ` +
    `into one (a snippet appended to the file needs its lines moved under the existing key).`
  );
}

function lineOf(document: Document, lineCounter: LineCounter, keyPath: KeyPath): number {
  for (let n = keyPath.length; n >= 0; n--) {
    const sub = keyPath.slice(0, n);
    const node = sub.length === 0 ? document.contents : (findKeyNode(document, sub) ?? document.getIn(sub, true));
    const range = (node as Node | null | undefined)?.range;
    if (range) return lineCounter.linePos(range[0]).line;
  }
  return 1;
}

// The key itself (not its value) so that the line is the one the operator wrote the key on.
function findKeyNode(document: Document, keyPath: KeyPath): Node | undefined {
  const parent = keyPath.length === 1 ? document.contents : document.getIn(keyPath.slice(0, -1), true);
  const last = keyPath[keyPath.length - 1];
  if (isMap(parent)) {
    const pair = parent.items.find((item) => (item.key as { value?: unknown })?.value === last);
    return pair?.key as Node | undefined;
  }
  if (isSeq(parent) && typeof last === 'number') return parent.items[last] as Node | undefined;
  return undefined;
}

export function formatKeyPath(keyPath: KeyPath): string {
  return keyPath.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? k : `.${k}`)).join('') || '(top level)';
}

/** `FILE:LINE: key.path: message` */
export function configError(doc: ConfigDoc, keyPath: KeyPath, message: string, options?: ErrorOptions): ConfigError {
  return new ConfigError(`${doc.locate(keyPath)}: ${formatKeyPath(keyPath)}: ${message}`, options);
}

export function valueAt(data: unknown, keyPath: KeyPath): unknown {
  let value = data;
  for (const key of keyPath) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string | number, unknown>)[key];
  }
  return value;
}

type TypeName = 'string' | 'number' | 'boolean' | 'object' | 'array' | 'string[]';
type TypeOf<T extends TypeName> = T extends 'string'
  ? string
  : T extends 'number'
    ? number
    : T extends 'boolean'
      ? boolean
      : T extends 'object'
        ? Record<string, unknown>
        : T extends 'array'
          ? unknown[]
          : string[];

function isType(value: unknown, type: TypeName): boolean {
  switch (type) {
    case 'string':
      return typeof value === 'string';
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'boolean':
      return typeof value === 'boolean';
    case 'object':
      return value !== null && typeof value === 'object' && !Array.isArray(value);
    case 'array':
      return Array.isArray(value);
    case 'string[]':
      return Array.isArray(value) && value.every((v) => typeof v === 'string');
  }
}

const ARTICLE: Record<TypeName, string> = {
  string: 'a string',
  number: 'a number',
  boolean: 'true or false',
  object: 'a mapping (key: value)',
  array: 'a list',
  'string[]': 'a list of strings',
};

/** The value at keyPath, checked against `type`; undefined when absent and not required. */
export function getKey<T extends TypeName>(
  doc: ConfigDoc,
  keyPath: KeyPath,
  type: T,
  { required = false } = {},
): TypeOf<T> | undefined {
  const value = valueAt(doc.data, keyPath);
  if (value === undefined || value === null) {
    if (required) throw configError(doc, keyPath, `is required and must be ${ARTICLE[type]}.`);
    return undefined;
  }
  if (!isType(value, type)) throw configError(doc, keyPath, `must be ${ARTICLE[type]}, got ${describe(value)}.`);
  return value as TypeOf<T>;
}

/** The whole number at keyPath, from min to max; `fallback` when absent. */
export function wholeNumber(doc: ConfigDoc, keyPath: KeyPath, fallback: number, min: number, max: number): number {
  const value = getKey(doc, keyPath, 'number') ?? fallback;
  if (!Number.isInteger(value) || value < min || value > max)
    throw configError(doc, keyPath, `must be a whole number from ${min} to ${max}.`);
  return value;
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return 'a list';
  if (value === null) return 'null';
  if (typeof value === 'object') return 'a mapping';
  return `${typeof value} ${JSON.stringify(value)}`;
}

/** Throws naming the first key under keyPath that is not in `allowed`. */
export function checkKnownKeys(doc: ConfigDoc, keyPath: KeyPath, allowed: readonly string[]): void {
  const value = valueAt(doc.data, keyPath);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return;
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      throw configError(doc, [...keyPath, key], `unknown key; expected one of: ${allowed.join(', ')}.`);
    }
  }
}
