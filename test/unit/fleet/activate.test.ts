// The slave's crash recovery picks out its own repo's leftovers by exact name (lib/fleet/activate.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cloneUrl, leftoversOf } from '../../../lib/fleet/activate.ts';

test('leftoversOf: only REPO.old-PID-MS and REPO.clone-PID-MS of that repo, olds oldest first', () => {
  const entries = [
    '.a.old-12-1700000000002',
    '.a.old-9-1700000000001',
    '.a.clone-4-1700000000000',
    '.a.lock',
    '.a.clone-x.lock',
    '.a.clone-x.clone-5-1700000000003',
    '.a.clone-x.old-6-1700000000004',
    '.ab.clone-1-2',
    '.a.clone-',
    '.a.clone-1-2-3',
    '.a.clone-1-2.tmp',
    'a',
    'a.clone-x',
  ];
  assert.equal(leftoversOf('a', entries), {
    olds: ['.a.old-9-1700000000001', '.a.old-12-1700000000002'],
    temps: ['.a.clone-4-1700000000000'],
  });
  assert.equal(leftoversOf('a.clone-x', entries), {
    olds: ['.a.clone-x.old-6-1700000000004'],
    temps: ['.a.clone-x.clone-5-1700000000003'],
  });
});

test('cloneUrl: BASE/REPO.git for URLs and local folders', () => {
  assert.is(cloneUrl('https://github.com/aiegoo/', 'site'), 'https://github.com/aiegoo/site.git');
  assert.is(cloneUrl('git@github.com:aiegoo', 'site'), 'git@github.com:aiegoo/site.git');
  assert.is(cloneUrl('/srv/git', 'site'), '/srv/git/site.git');
});

test.run();
