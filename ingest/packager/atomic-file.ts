// Writes a file so that readers only ever see it whole: the bytes go to a
// temporary dot-file in the same directory, which is then renamed over the
// final name. The upload watcher ignores dot-files.
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.tmp`);
  await mkdir(dir, { recursive: true });
  await writeFile(tmp, data);
  await rename(tmp, path);
}

export function isTemporaryName(path: string): boolean {
  return basename(path).startsWith('.');
}
