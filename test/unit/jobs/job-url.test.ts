// Where a job's page lives (lib/jobs/job-url.ts): under public_url, with or without a path behind
// a proxy, the id encoded so that it stays one path segment.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { basePath, jobPagePath, jobPageUrl } from '../../../lib/jobs/job-url.ts';

const ID = '20261124-101500-00002a';

test('the page of a job at a host root and under a path, trailing slashes or not', () => {
  assert.is(jobPageUrl('https://ci.example.com', ID), `https://ci.example.com/jobs/${ID}`);
  assert.is(jobPageUrl('https://ci.example.com/', ID), `https://ci.example.com/jobs/${ID}`);
  assert.is(jobPageUrl('https://example.com/ci//', ID), `https://example.com/ci/jobs/${ID}`);
});

test('an id is one encoded path segment', () => {
  assert.is(jobPagePath('a/b?c#d'), '/jobs/a%2Fb%3Fc%23d');
  assert.is(jobPagePath(ID), `/jobs/${ID}`);
});

test('basePath: the path the pages are served under', () => {
  assert.is(basePath(undefined), '');
  assert.is(basePath('https://ci.example.com'), '');
  assert.is(basePath('https://ci.example.com/'), '');
  assert.is(basePath('https://example.com/ci/'), '/ci');
  assert.is(basePath('https://example.com/a/b'), '/a/b');
});

test.run();
