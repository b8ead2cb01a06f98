// Writes a file so that readers only ever see it whole: the bytes go to a
// temporary file, which is then renamed over the final name. The volume's
// sweeps ignore dot-files and dot-directories.
//
// On the media volume the temporary files live in a directory of their own
// (same filesystem, so the rename stays atomic): then a stream's folders change
// once per file, not three times. A file's folder is made only when the rename
// finds it missing (a new session's first file), not checked before every write.
import { mkdir, rename, rm, writeFile } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';

// The callback forms: for a whole-file write they cost a fraction of the
// promise API's FileHandle machinery, on a path taken several times a second
// per stream.
const writeFileAsync = promisify(writeFile);
const renameAsync = promisify(rename);
const mkdirAsync = promisify(mkdir);
const rmAsync = promisify(rm);

let counter = 0;

export async function writeFileAtomic(path: string, data: Uint8Array | string, tmpDir?: string): Promise<void> {
  const tmp = tmpDir ? join(tmpDir, `${process.pid}-${++counter}-${basename(path)}`) : join(dirname(path), `.${basename(path)}.tmp`);
  try {
    await writeFileAsync(tmp, data).catch(async (error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
      await mkdirAsync(dirname(tmp), { recursive: true });
      await writeFileAsync(tmp, data);
    });
    await renameAsync(tmp, path).catch(async (error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
      await mkdirAsync(dirname(path), { recursive: true });
      await renameAsync(tmp, path);
    });
  } catch (error) {
    // A write cut short (ENOSPC mid-file) leaves a partial temporary file that
    // nothing will ever rename: remove it, which also gives its space back.
    await rmAsync(tmp, { force: true }).catch(() => undefined);
    throw error;
  }
}

/** The media volume's directory for files being written. */
export const MEDIA_TMP_DIR = '.tmp';

export function isTemporaryName(path: string): boolean {
  return basename(path).startsWith('.');
}
