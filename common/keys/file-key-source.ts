// The local key source: a YAML file of LiveStream objects, each with the key
// it accepts in a top-level `streamKey` field (local mode only; in Kubernetes
// the controller keeps keys in Secrets). The file is reloaded when it changes;
// a file with errors is refused as a whole and the last good view stays.
import { readFile } from 'node:fs/promises';
import { watch, type FSWatcher } from 'chokidar';
import { parseAllDocuments } from 'yaml';
import type { Logger } from '../log.ts';
import { API_VERSION_FULL, KIND, isValidName, isValidNamespace, settingsFromSpec, streamId, type LiveStreamObject, type SpecDefaults } from '../livestream.ts';
import { GrantTable, isWellFormedKey, type StreamGrant } from './key-source.ts';

export interface LocalLiveStream extends LiveStreamObject {
  streamKey: string;
}

/** Parses the key file; throws with every problem found, each naming its document. `defaults` fill what a LiveStream does not say. */
export function parseKeyFile(text: string, defaults: SpecDefaults = {}): Map<string, StreamGrant> {
  const grants = new Map<string, StreamGrant>();
  const seen = new Set<string>();
  const problems: string[] = [];
  parseAllDocuments(text).forEach((doc, index) => {
    const where = `document ${index + 1}`;
    // Parser messages quote the file, and the file holds keys (an alias
    // name, a bad scalar): report only the error's code and position.
    if (doc.errors.length > 0) {
      const e = doc.errors[0]!;
      const at = e.linePos?.[0];
      problems.push(`${where}: YAML ${e.code}${at ? ` at line ${at.line}, column ${at.col}` : ''}`);
      return;
    }
    let obj: Partial<LocalLiveStream> | null;
    try {
      obj = doc.toJSON() as Partial<LocalLiveStream> | null;
    } catch {
      problems.push(`${where}: YAML that cannot be resolved (an alias to a missing anchor?)`);
      return;
    }
    if (obj === null || obj === undefined) return;
    if (obj.apiVersion !== API_VERSION_FULL || obj.kind !== KIND) {
      problems.push(`${where}: expected apiVersion ${API_VERSION_FULL} and kind ${KIND}`);
      return;
    }
    const name = obj.metadata?.name ?? '';
    const namespace = obj.metadata?.namespace ?? 'default';
    const id = streamId({ namespace, name });
    const label = `${where} (${id})`;
    if (!isValidName(name)) problems.push(`${label}: metadata.name must be a lowercase DNS name`);
    if (!isValidNamespace(namespace)) problems.push(`${label}: metadata.namespace must be a lowercase DNS label`);
    if (typeof obj.streamKey !== 'string' || !isWellFormedKey(obj.streamKey)) {
      problems.push(`${label}: streamKey must be 16 to 128 characters of A-Z, a-z, 0-9, _ or -`);
      return;
    }
    const { settings, problems: specProblems } = settingsFromSpec(obj.spec, defaults);
    problems.push(...specProblems.map((p) => `${label}: ${p}`));
    if (seen.has(id)) problems.push(`${label}: this LiveStream is listed twice`);
    if (grants.has(obj.streamKey)) problems.push(`${label}: its streamKey is already used by another LiveStream`);
    seen.add(id);
    grants.set(obj.streamKey, { ref: { namespace, name }, settings });
  });
  if (problems.length > 0) throw new Error(`invalid key file: ${problems.join('; ')}`);
  return grants;
}

export class FileKeySource extends GrantTable {
  private watcher: FSWatcher | undefined;
  private readonly initial: Promise<void>;

  constructor(
    private readonly path: string,
    private readonly log: Logger,
    private readonly defaults: SpecDefaults = {},
  ) {
    super();
    this.initial = this.load(true);
    this.watcher = watch(path, { ignoreInitial: true, awaitWriteFinish: { stabilityThreshold: 50, pollInterval: 20 } });
    this.watcher.on('all', () => void this.load(false));
  }

  ready(): Promise<void> {
    return this.initial;
  }

  async close(): Promise<void> {
    await this.watcher?.close();
    this.watcher = undefined;
  }

  private async load(first: boolean): Promise<void> {
    try {
      const text = await readFile(this.path, 'utf8');
      this.replaceGrants(parseKeyFile(text, this.defaults), !first);
      this.log.info({ file: this.path, streams: this.grants.size }, 'loaded stream keys');
    } catch (error) {
      if (first) throw error;
      this.log.error({ file: this.path, err: (error as Error).message }, 'key file not reloaded; keeping the previous keys');
    }
  }
}
