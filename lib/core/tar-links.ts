// node-tar's `linkCache` for packs that store a hard-linked file as a file of its own, not as a
// Link entry (pnpm hard-links every file of node_modules). It also keeps node-tar (7.5.23) off its
// path for hard links, where a link whose stat came back before its target's is deferred and the
// Pack can end twice: "write after end" (or, with its gzip, a zlib error) thrown from an fs
// callback, which ends the process. Checked by test/unit/core/tar-links.test.ts.

/**
 * Answers for every device:inode that it was packed already, but elsewhere than under the folder:
 * node-tar then neither defers the file as a link waiting for its target nor writes a Link entry.
 */
export class HardLinksAsFiles extends Map<`${number}:${number}`, string> {
  override get(): string {
    return '\0';
  }
  override set(): this {
    return this;
  }
}
