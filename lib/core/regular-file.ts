// A file opened only when it is a regular file of its own: O_NOFOLLOW refuses a symbolic link,
// O_NONBLOCK keeps a FIFO or a device from blocking the open, and fstat on the open descriptor
// says what was opened (no race between the check and the read); a second hard link is refused
// unless allowed. For files an attacker may have placed: a backup's parts, its manifest.
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { ValidationError } from './errors.ts';

export interface RegularFileOptions {
  /** How messages name the file (default: its path). */
  what?: string;
  /** What the operator should do when it is refused, appended to the message. */
  advice?: string;
  /** Accept a file with more than one hard link (default: refused, it may be a link to a file elsewhere). */
  allowHardLinks?: boolean;
}

export interface RegularFile {
  handle: FileHandle;
  size: number;
}

const FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY;

/**
 * Opens `file` for reading, refusing anything but a regular file with a ValidationError that
 * names it. A missing file throws the open's own ENOENT error, for the caller to name.
 */
export async function openRegularFile(file: string, options: RegularFileOptions = {}): Promise<RegularFile> {
  const what = options.what ?? file;
  const refuse = (why: string) =>
    new ValidationError(
      `${what} ${why}: refused, nothing was read from it.${options.advice ? ` ${options.advice}` : ''}`,
    );
  let handle: FileHandle;
  try {
    handle = await open(file, FLAGS);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOOP') throw refuse('is a symbolic link');
    throw error;
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw refuse(`is ${kindOf(stats)}, not a regular file`);
    if (stats.nlink > 1 && !options.allowHardLinks)
      throw refuse(`has ${stats.nlink} hard links (it may be a link to a file elsewhere)`);
    return { handle, size: stats.size };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/** A regular file read whole (see openRegularFile), refused when it is larger than `maxBytes`. */
export async function readRegularFile(
  file: string,
  maxBytes: number,
  options: RegularFileOptions = {},
): Promise<Buffer> {
  const { handle, size } = await openRegularFile(file, options);
  try {
    if (size > maxBytes)
      throw new ValidationError(
        `${options.what ?? file} is ${size} bytes, more than the ${maxBytes} it may be: ` +
          `refused.${options.advice ? ` ${options.advice}` : ''}`,
      );
    const buffer = Buffer.alloc(size);
    let done = 0;
    while (done < size) {
      const { bytesRead } = await handle.read(buffer, done, size - done, done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return buffer.subarray(0, done);
  } finally {
    await handle.close();
  }
}

function kindOf(stats: {
  isDirectory(): boolean;
  isFIFO(): boolean;
  isSocket(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
}): string {
  if (stats.isDirectory()) return 'a folder';
  if (stats.isFIFO()) return 'a named pipe (FIFO)';
  if (stats.isSocket()) return 'a socket';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  return 'of another kind';
}
