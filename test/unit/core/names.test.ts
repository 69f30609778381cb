// Names that become paths (lib/core/names.ts): every hostile name an audit listed is refused with a
// ValidationError that says why; plain names pass; resolveInside never leaves its root.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ValidationError } from '../../../lib/core/errors.ts';
import {
  MAX_NAME_LENGTH,
  MAX_REPO_PARTS,
  nameProblem,
  refNameProblem,
  repoFolderName,
  resolveInside,
  validateFullName,
  validateName,
  validatePayloadSha,
  validateRefName,
  validateShaInput,
} from '../../../lib/core/names.ts';

function throwsValidation(fn: () => unknown, pattern: RegExp) {
  try {
    fn();
  } catch (error) {
    assert.instance(error, ValidationError);
    assert.match((error as Error).message, pattern);
    return;
  }
  assert.unreachable('expected a ValidationError');
}

const valid = ['site', 'my-app_2.js', 'A1', '_private', 'v1.2.3', 'x'.repeat(MAX_NAME_LENGTH), '007', 'a-', 'a.'];

for (const name of valid) {
  test(`valid name ${JSON.stringify(name.length > 20 ? `${name.slice(0, 10)}… (${name.length})` : name)}`, () => {
    assert.is(nameProblem(name), undefined);
    assert.is(validateName(name, 'repository'), name);
  });
}

// [label, name, why]
const invalid: Array<[string, unknown, RegExp]> = [
  ['../etc', '../etc', /may only hold|must not contain/],
  ['a/b', 'a/b', /may only hold/],
  ['.hidden', '.hidden', /must not start with "\."/],
  ['.', '.', /must not start with "\."/],
  ['..', '..', /must not start with "\."|must not contain/],
  ['-rf', '-rf', /must not start with .* "-"/],
  ['empty', '', /is empty/],
  ['undefined', undefined, /is empty/],
  ['a number', 42, /is empty/],
  ['300 characters', 'a'.repeat(300), /longer than 100 characters/],
  ['101 characters', 'a'.repeat(101), /longer than 100 characters/],
  ['x;rm -rf /', 'x;rm -rf /', /may only hold/],
  ['x NUL', 'x\0', /may only hold/],
  ['x%00 as sent', 'x%00', /may only hold/],
  ['%2e%2e%2f as sent', '%2e%2e%2f', /may only hold/],
  ['%2e%2e%2f decoded', decodeURIComponent('%2e%2e%2f'), /may only hold|must not/],
  ['%2e%2e decoded (no slash)', decodeURIComponent('%2e%2e'), /must not start with "\."|must not contain/],
  ['a..b', 'a..b', /must not contain "\.\."/],
  ['Cyrillic а in "sitа"', 'sit\u0430', /may only hold/],
  ['Cyrillic е in "sitе"', 'sit\u0435', /may only hold/],
  ['full-width solidus ／', 'a\uff0fb', /may only hold/],
  ['division slash U+2215', 'a\u2215b', /may only hold/],
  ['full-width dots ．．', '\uff0e\uff0e', /may only hold/],
  ['space', 'my site', /may only hold/],
  ['newline', 'site\n', /may only hold/],
  ['backslash', 'a\\b', /may only hold/],
  ['accented letter', 'café', /may only hold/],
  ['shell $()', '$(id)', /may only hold/],
  ['tilde', '~root', /may only hold/],
];

for (const [label, name, why] of invalid) {
  test(`invalid name: ${label}`, () => {
    const problem = nameProblem(name);
    assert.type(problem, 'string');
    assert.match(problem!, why);
    throwsValidation(
      () => validateName(name, 'repository'),
      new RegExp(`^Invalid repository .*: it (?:.* )?(?:${why.source})`),
    );
  });
}

test('the message quotes the name safely: NUL and newlines escaped, long names shortened', () => {
  throwsValidation(() => validateName('x\0', 'app'), /^Invalid app "x\\u0000": it /);
  throwsValidation(() => validateName('a\nb'), /^Invalid name "a\\nb": it /);
  try {
    validateName('a'.repeat(300));
  } catch (error) {
    const message = (error as Error).message;
    assert.ok(message.length < 200, `message is short: ${message.length}`);
    assert.match(message, /\.\.\."/);
  }
});

const fullNames: Array<[string, boolean]> = [
  ['octo/site', true],
  ['site', true],
  ['Octo-Org/my.site_2', true],
  // GitLab subgroups (these were refused, so such projects could not be configured).
  ['a/b/c', true],
  ['group/sub/project', true],
  [Array.from({ length: MAX_REPO_PARTS }, (_, i) => `g${i}`).join('/'), true],
  [Array.from({ length: MAX_REPO_PARTS + 1 }, (_, i) => `g${i}`).join('/'), false],
  // GitHub's organisation profile repos.
  ['owner/.github', true],
  ['octo/.github-private', true],
  ['octo/_private', true],
  ['octo/site.js', true],
  ['octo/.', false],
  ['.github', false],
  ['.org/site', false],
  ['octo/..', false],
  ['octo/a..b', false],
  ['octo/site\n', false],
  ['octo/sit\u0430', false],
  ['octo/ site', false],
  ['/site', false],
  ['octo/', false],
  ['octo//site', false],
  ['octo/../x', false],
  ['../octo/site', false],
  ['octo/.git', false],
  ['octo/-rf', false],
  ['', false],
  ['octo\\site', false],
  ['octo\uff0fsite', false],
  ['octo\u2215site', false],
];

for (const [name, ok] of fullNames) {
  test(`validateFullName ${JSON.stringify(name)} → ${ok ? 'ok' : 'refused'}`, () => {
    if (ok) assert.is(validateFullName(name), name);
    else throwsValidation(() => validateFullName(name), /^Invalid repository /);
  });
}

// Folder names: the old spelling kept for every name it can stand for alone, no two names on one
// folder, never ".", "..", a leading dot or a "/", and bounded in length.
const folders: Array<[string, string]> = [
  ['octo/site', 'octo__site'],
  ['site', 'site'],
  ['Octo.Org/my-site_2', 'Octo.Org__my-site_2'],
  ['_private', '_private'],
  ['octo/site_', 'octo__site_'],
  ['group/sub/project', 'group__sub__project'],
  ['owner/.github', 'owner__.github'],
  ['a__b/c', '+a__b+c'],
  ['a/b__c', '+a+b__c'],
  ['a_/b', '+a_+b'],
  ['a/_b', '+a+_b'],
  ['octo__site', '+octo__site'],
];
for (const [name, want] of folders) {
  test(`repoFolderName ${JSON.stringify(name)} → ${want}`, () => assert.is(repoFolderName(name), want));
}

test('repoFolderName is injective over names built to collide, and every folder is one safe path segment', () => {
  const parts = ['a', 'b', '_', 'a_', '_a', 'a__b', '__', '.a', 'a.', '+', 'x'.repeat(120)].filter(
    (p) => !nameProblem(p) || p.startsWith('.') || p.startsWith('_'),
  );
  const names = new Set<string>();
  for (const p of parts)
    for (const q of parts) for (const r of ['', ...parts]) names.add([p, q, r].filter(Boolean).join('/'));
  const seen = new Map<string, string>();
  let checked = 0;
  for (const name of names) {
    if (validateFullNameOk(name) === false) continue;
    const folder = repoFolderName(name);
    checked++;
    assert.not.ok(seen.has(folder), `${name} and ${seen.get(folder)} share ${folder}`);
    seen.set(folder, name);
    assert.not.ok(folder.includes('/') || folder.includes('\\') || folder.includes('..'), folder);
    assert.not.ok(folder.startsWith('.') || folder.startsWith('-'), folder);
    assert.ok(folder.length <= 200, `${folder.length} characters`);
    assert.is(path.basename(folder), folder);
  }
  assert.ok(checked > 300, `checked ${checked}`);
  assert.is(repoFolderName('x'.repeat(180) + '/' + 'y'.repeat(180)).length, 200);
  assert.is.not(repoFolderName('g/' + 'x'.repeat(250)), repoFolderName('g/' + 'x'.repeat(249) + 'y'));
  throwsValidation(() => repoFolderName('../x'), /^Invalid repository /);
});

function validateFullNameOk(name: string): boolean {
  try {
    validateFullName(name);
    return true;
  } catch {
    return false;
  }
}

// Ref names, table-tested against the real `git check-ref-format` (--allow-onelevel for short
// names). Two deliberate differences: a name starting with "-" (git takes it as a ref, a command
// line as an option; `git check-ref-format --branch` refuses it too), and a part over 255 bytes
// (longer than a file name may be, so no loose ref, and no forge, can hold it).
const refs = [
  'main',
  'release/1.x',
  'v1.2.3',
  'feature_x-y',
  'v1.0.0+build',
  'pkg@1.2.3',
  '@scope/pkg@1.2.3',
  'issue#12',
  'a#b/c@d',
  'a@b',
  '@',
  'café',
  '日本/ブランチ',
  'emoji-🚀',
  'a..b',
  '..',
  'a/../b',
  'x@{1}',
  '@{-1}',
  'a.lock',
  'a/b.lock/c',
  'a.lock/b',
  'x.lockx',
  '.hidden',
  'a/.b',
  'a/',
  '/a',
  'a//b',
  'a.',
  'a/b.',
  'a b',
  'a\tb',
  'a\u007fb',
  'a\u001bb',
  'a~1',
  'a^',
  'a:b',
  'a?',
  'a*',
  'a[1]',
  'a\\b',
  'a{b}',
  'HEAD',
  'refs/heads/main',
  'refs/tags/v1',
  'x'.repeat(255),
  'x'.repeat(256),
  '-x',
  '--upload-pack=x',
  'a-',
  'a/-b',
];
for (const ref of refs) {
  test(`ref name ${JSON.stringify(ref.length > 30 ? `${ref.slice(0, 8)}… (${ref.length})` : ref)} agrees with git check-ref-format`, () => {
    const git = spawnSync('git', ['check-ref-format', '--allow-onelevel', ref]);
    const gitSays = git.status === 0;
    const ours = refNameProblem(ref) === undefined;
    if (ref.startsWith('-')) {
      assert.is(ours, false, 'an option-like name is refused');
      assert.is.not(spawnSync('git', ['check-ref-format', '--branch', ref]).status, 0);
    } else if (ref.length > 255) {
      assert.is(ours, false, 'a part longer than a file name is refused');
    } else {
      assert.is(
        ours,
        gitSays,
        `git ${gitSays ? 'accepts' : 'refuses'} it, shipkit ${ours ? 'accepts' : 'refuses'} it (${refNameProblem(ref)})`,
      );
    }
    if (ours) assert.is(validateRefName(ref, 'tag'), ref);
    else throwsValidation(() => validateRefName(ref, 'tag'), /^Invalid tag name ".*": it /);
  });
}

test('ref names git cannot be asked about (NUL, lone surrogate, over 1024 bytes) are refused', () => {
  for (const ref of ['a\0b', 'a\ud800b', `${'x/'.repeat(600)}x`, '', 7, undefined])
    assert.type(refNameProblem(ref), 'string', JSON.stringify(ref));
  assert.match(refNameProblem('refs', { oneLevel: false })!, /full ref/);
  assert.is(refNameProblem('refs/heads/pkg@1.2.3', { oneLevel: false }), undefined);
});

test('commit ids: 7-64 hex from a person (lower-cased), a full 40/64 from a forge', () => {
  assert.is(validateShaInput('ABCDEF1'), 'abcdef1');
  assert.is(validateShaInput('a'.repeat(64)), 'a'.repeat(64));
  for (const bad of ['abc', 'xyz1234', 'a'.repeat(65), '1234567 ', '--all', 7, undefined])
    throwsValidation(() => validateShaInput(bad, '--sha'), /^Invalid --sha .*7 to 64 hexadecimal/);
  for (const good of ['b'.repeat(40), 'c'.repeat(64)]) assert.is(validatePayloadSha(good), good);
  for (const bad of ['abcdef1', 'B'.repeat(40), 'b'.repeat(41), 'b'.repeat(63), `${'b'.repeat(40)}\n`, null])
    throwsValidation(() => validatePayloadSha(bad), /full 40 or 64/);
});

const root = path.resolve('/srv/shipkit/root');

const inside: Array<[string, string]> = [
  ['a', 'a'],
  ['a/b/c', 'a/b/c'],
  ['./a', 'a'],
  ['a//b', 'a/b'],
  ['a/./b/', 'a/b'],
  ['.hidden', '.hidden'],
  ['a..b', 'a..b'],
  ['...', '...'],
];

for (const [relative, want] of inside) {
  test(`resolveInside ${JSON.stringify(relative)} stays inside`, () => {
    assert.is(resolveInside(root, relative), path.join(root, want));
  });
}

const outside: Array<[string, string, RegExp]> = [
  ['absolute', '/etc/passwd', /must be relative/],
  ['absolute inside the root itself', `${root}/a`, /must be relative/],
  ['drive letter', 'C:/Windows', /must be relative/],
  ['..', '..', /must not contain "\.\."/],
  ['../x', '../x', /must not contain "\.\."/],
  ['nested escape a/../../x', 'a/../../x', /must not contain "\.\."/],
  ['harmless-looking a/../b', 'a/../b', /must not contain "\.\."/],
  ['backslash ..\\x', '..\\x', /must not contain "\.\."/],
  ['sibling with same prefix', '../root-evil/x', /must not contain "\.\."/],
  ['NUL', 'a\0b', /contains a NUL byte/],
  ['NUL after ..', '..\0', /contains a NUL byte/],
  ['empty', '', /is empty/],
  ['the root itself (.)', '.', /leaves/],
  ['the root itself (./)', './', /leaves/],
];

for (const [label, relative, why] of outside) {
  test(`resolveInside refuses ${label}`, () => {
    throwsValidation(
      () => resolveInside(root, relative, 'destination'),
      new RegExp(`^Invalid destination.*(?:${why.source})`),
    );
  });
}

test('resolveInside works with a relative or trailing-slash root', () => {
  assert.is(resolveInside('some/root/', 'x'), path.resolve('some/root/x'));
  throwsValidation(() => resolveInside('some/root/', '../root2/x'), /\.\./);
});

test('resolveInside under the root folder / itself', () => {
  assert.is(resolveInside('/', 'srv/site'), '/srv/site');
  throwsValidation(() => resolveInside('/', '.'), /leaves/);
  throwsValidation(() => resolveInside('/', '../x'), /\.\./);
});

test.run();
