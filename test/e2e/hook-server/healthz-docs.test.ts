// docs/hook-server.md's /healthz held against a real hook-server: the answer shown after the
// first run and the keys listed under "Read API" are the keys, in order, that GET /healthz
// answers; docs/ha.md's example (with queue:) has the same keys.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT, startScript, tmpDir } from '../../_helpers/common.ts';
import { fencedBlocks } from '../../_helpers/markdown.ts';

const page = (name: string) => readFileSync(path.join(ROOT, 'docs', name), 'utf8');

/** The JSON lines of a page's code blocks that are /healthz answers: objects with "ok" and "queued". */
function healthzExamples(text: string): Array<Record<string, unknown>> {
  return fencedBlocks(text)
    .blocks.flatMap((b) => b.code.split('\n'))
    .filter((line) => /^\{"ok": ?(true|false),/.test(line) && line.includes('"queued"'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

test('the /healthz the docs show has the keys a real hook-server answers with', async () => {
  const dir = tmpDir('shipkit-healthz-');
  const server = await startScript('hook-server', ['--listen', '127.0.0.1:0'], { cwd: dir });
  try {
    const res = await fetch(`${server.url}/healthz`);
    assert.is(res.status, 200);
    const answer = (await res.json()) as Record<string, unknown>;
    const keys = Object.keys(answer);
    assert.equal(keys, ['ok', 'node', 'leader', 'db', 'queued', 'running'], JSON.stringify(answer));

    const firstRun = healthzExamples(page('hook-server.md'));
    assert.is(firstRun.length, 1, 'docs/hook-server.md shows one /healthz answer');
    assert.equal(Object.keys(firstRun[0]), keys, 'docs/hook-server.md, the first run');
    assert.is(firstRun[0].db, answer.db, 'without queue: the db is "none", as the docs say');

    const listed = /`GET \/healthz` is open: `\{([^}]*)\}`/.exec(page('hook-server.md'));
    assert.ok(listed, 'docs/hook-server.md "Read API" lists the keys of /healthz');
    assert.equal(
      [...listed[1].matchAll(/"(\w+)"/g)].map((m) => m[1]),
      keys,
      'docs/hook-server.md, Read API',
    );

    const ha = healthzExamples(page('ha.md'));
    assert.is(ha.length, 1, 'docs/ha.md shows one /healthz answer');
    assert.equal(Object.keys(ha[0]), keys, 'docs/ha.md');
  } finally {
    await server.stop();
  }
});

test.run();
