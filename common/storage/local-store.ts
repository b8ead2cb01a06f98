// The local-directory object store for the one-machine mode: the gateway
// serves this directory as the origin, with the same headers S3 would give.
import { readFile, rm } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { writeFileAtomic } from '../atomic-file.ts';
import type { ObjectStore, PutOptions } from './object-store.ts';

export class LocalDirectoryStore implements ObjectStore {
  readonly description: string;
  private readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
    this.description = `local directory ${this.root}`;
  }

  async put(key: string, body: Uint8Array, _options: PutOptions): Promise<void> {
    await writeFileAtomic(this.pathOf(key), body);
  }

  async delete(key: string): Promise<void> {
    await rm(this.pathOf(key), { force: true });
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    try {
      return await readFile(this.pathOf(key));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  async deletePrefix(prefix: string): Promise<void> {
    await rm(this.pathOf(prefix), { recursive: true, force: true });
  }

  private pathOf(key: string): string {
    const path = resolve(join(this.root, key));
    if (!path.startsWith(this.root + sep)) throw new Error(`object key escapes the origin directory: ${key}`);
    return path;
  }
}
