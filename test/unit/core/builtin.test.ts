// Built-in modules through process.getBuiltinModule (lib/core/builtin.ts): the module itself where
// the runtime has the function, undefined for a name that is no built-in, and undefined where the
// runtime has no getBuiltinModule (Node before 20.16), whose callers then import the module; and
// requireBuiltin, which there takes node:module's require once prepareBuiltins has loaded it.
import fs from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { builtinModule, prepareBuiltins, requireBuiltin } from '../../../lib/core/builtin.ts';

test('the built-in module itself, the same object an import gives', () => {
  assert.is(builtinModule<typeof fs>('node:fs')?.writeSync, fs.writeSync);
});

test('a name that is no built-in: undefined, nothing loaded from disk', () => {
  assert.is(builtinModule('node:no-such-module'), undefined);
  assert.is(builtinModule('./lib/core/builtin.ts'), undefined);
});

test('a runtime without getBuiltinModule: undefined, looked up at each call', () => {
  const process_ = process as { getBuiltinModule?: unknown };
  const saved = process_.getBuiltinModule;
  try {
    process_.getBuiltinModule = undefined;
    assert.is(builtinModule('node:fs'), undefined);
  } finally {
    process_.getBuiltinModule = saved;
  }
  assert.ok(builtinModule('node:fs'));
});

test('requireBuiltin: the same module; without getBuiltinModule, a plain error until prepareBuiltins ran', async () => {
  assert.is(requireBuiltin<typeof fs>('node:fs'), builtinModule('node:fs'));
  const process_ = process as { getBuiltinModule?: unknown };
  const saved = process_.getBuiltinModule;
  try {
    process_.getBuiltinModule = undefined;
    assert.throws(() => requireBuiltin('node:fs'), /node:fs was asked for before prepareBuiltins\(\) was awaited/);
    await prepareBuiltins();
    assert.is(requireBuiltin<typeof fs>('node:fs').writeSync, fs.writeSync);
    assert.is(requireBuiltin<typeof fs>('fs').writeSync, fs.writeSync, 'without node: too');
  } finally {
    process_.getBuiltinModule = saved;
  }
});

test.run();
