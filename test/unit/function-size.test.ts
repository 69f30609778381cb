// The house rule that keeps lib/ readable (ARCHITECTURE.md): no function in lib/ is longer than
// 80 lines, and the queue, hook-server's wiring and its delivery handler stay small (≤ 60). A
// function's length is its lines from its first to its last, nested functions included, read with
// the TypeScript parser (functions, methods, arrows and function expressions alike).
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT } from '../_helpers/common.ts';

const LIMIT = 80;
const SMALL: Record<string, number> = { createJobQueue: 60, startHookServer: 60, handleDelivery: 60 };

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    return e.isDirectory() ? sources(full) : e.name.endsWith('.ts') ? [full] : [];
  });
}

export interface FunctionSize {
  file: string;
  name: string;
  lines: number;
}

/** Every function-like node of a source text with its name (or where it is) and its line count. */
export function functionSizes(file: string, text: string): FunctionSize[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found: FunctionSize[] = [];
  const lineOf = (pos: number) => source.getLineAndCharacterOfPosition(pos).line;
  const nameOf = (node: ts.Node): string => {
    const named = node as ts.Node & { name?: ts.Node };
    if (named.name) return named.name.getText(source);
    const parent = node.parent;
    if (parent && (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent)))
      return parent.name.getText(source);
    return `(anonymous at line ${lineOf(node.getStart(source)) + 1})`;
  };
  const visit = (node: ts.Node) => {
    if (ts.isFunctionLike(node) && (node as ts.FunctionLikeDeclaration).body) {
      found.push({ file, name: nameOf(node), lines: lineOf(node.getEnd()) - lineOf(node.getStart(source)) + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

const all = sources(path.join(ROOT, 'lib')).flatMap((f) =>
  functionSizes(path.relative(ROOT, f), readFileSync(f, 'utf8')),
);

test('functionSizes counts a function, a method and an arrow with their names', () => {
  const text =
    'function a() {\n  return 1;\n}\nclass K {\n  m() {\n    return 2;\n  }\n}\nconst f = () => {\n  return 3;\n};\n';
  assert.equal(
    functionSizes('x.ts', text).map((s) => `${s.name}:${s.lines}`),
    ['a:3', 'm:3', 'f:3'],
  );
});

test(`no function in lib/ is longer than ${LIMIT} lines`, () => {
  const long = all.filter((s) => s.lines > LIMIT).map((s) => `${s.file} ${s.name}: ${s.lines} lines`);
  assert.equal(long, []);
});

test("the queue, hook-server's wiring and the delivery handler stay small", () => {
  for (const [name, limit] of Object.entries(SMALL)) {
    const sizes = all.filter((s) => s.name === name);
    assert.ok(sizes.length > 0, `${name} exists in lib/`);
    for (const s of sizes) assert.ok(s.lines <= limit, `${s.file} ${name}: ${s.lines} lines (limit ${limit})`);
  }
});

test.run();
