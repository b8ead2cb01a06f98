// Writes a file so that readers only ever see it whole: the bytes go to a
// temporary file, which is then renamed over the final name. The upload
// watcher ignores dot-files and dot-directories.
//
// On the media volume the temporary files live in a directory of their own
// (same filesystem, so the rename stays atomic): then a stream's folders change
// once per file, not three times, and the watcher re-reads them that much less.
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

let counter = 0;

export async function writeFileAtomic(path: string, data: Uint8Array | string, tmpDir?: string): Promise<void> {
  const dir = dirname(path);
  const tmp = tmpDir ? join(tmpDir, `${process.pid}-${++counter}-${basename(path)}`) : join(dir, `.${basename(path)}.tmp`);
  await mkdir(dir, { recursive: true });
  try {
    await writeFile(tmp, data);
    await rename(tmp, path);
  } catch (error) {
    // A write cut short (ENOSPC mid-file) leaves a partial temporary file that
    // nothing will ever rename: remove it, which also gives its space back.
    await rm(tmp, { force: true }).catch(() => undefined);
    throw error;
  }
}

/** The media volume's directory for files being written. */
export const MEDIA_TMP_DIR = '.tmp';

export function isTemporaryName(path: string): boolean {
  return basename(path).startsWith('.');
}
