// HardLinksAsFiles (lib/core/tar-links.ts): node-tar packs a hard-linked file as a file of its own,
// links listed before their targets and empty ones too, where node-tar's own handling of hard
// links (7.5.23) ends the Pack twice and throws from an fs callback.
import { linkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HardLinksAsFiles } from '../../../lib/core/tar-links.ts';
import { tmpDir } from '../../_helpers/common.ts';

test('hard links are packed as files, gzip or not, whatever their order', async () => {
  const tar = await import('tar');
  const src = tmpDir('shipkit-tar-links-');
  for (const name of ['one', 'two', 'three']) writeFileSync(path.join(src, name), `${name}\n`.repeat(1000));
  writeFileSync(path.join(src, 'empty'), '');
  for (const name of ['one', 'two', 'three', 'empty']) linkSync(path.join(src, name), path.join(src, `${name}-link`));
  // Links before their targets: the order that made plain node-tar end the Pack twice.
  const files = ['one-link', 'empty-link', 'one', 'two-link', 'empty', 'two', 'three', 'three-link'];
  for (let round = 0; round < 20; round++) {
    const entries: { path: string; type: string; size: number }[] = [];
    const pack = tar.c({ cwd: src, gzip: round % 2 === 0, linkCache: new HardLinksAsFiles() }, files);
    const chunks: Buffer[] = [];
    for await (const chunk of pack as unknown as AsyncIterable<Buffer>) chunks.push(chunk);
    const list = new tar.Parser({
      onReadEntry: (e) => (entries.push({ path: e.path, type: e.type, size: e.size }), e.resume()),
    });
    list.end(Buffer.concat(chunks));
    assert.equal(
      entries,
      files.map((f) => ({
        path: f,
        type: 'File',
        size: f.startsWith('empty') ? 0 : `${f.split('-')[0]}\n`.length * 1000,
      })),
    );
  }
});

test.run();
