// Where the ingest stores what viewers fetch. S3 (and S3-compatible stores)
// in production; a local directory for the one-machine mode.

export interface PutOptions {
  contentType: string;
  cacheControl: string;
}

export interface ObjectStore {
  /** Stores the object whole; resolves only once it is readable. */
  put(key: string, body: Uint8Array, options: PutOptions): Promise<void>;
  /** Deletes every object whose key starts with `prefix/`. */
  deletePrefix(prefix: string): Promise<void>;
  delete(key: string): Promise<void>;
  /** Reads an object whole; undefined when there is none under that key. */
  get(key: string): Promise<Uint8Array | undefined>;
  /** For logs: where objects go, without credentials. */
  readonly description: string;
}

/** Why an upload failed, as a bounded label value for metrics. */
export function failureReason(error: unknown): string {
  const e = error as { name?: string; code?: string; $metadata?: { httpStatusCode?: number } };
  const status = e?.$metadata?.httpStatusCode;
  if (status !== undefined) return status >= 500 ? 'server_error' : status === 403 || status === 401 ? 'access_denied' : 'client_error';
  const code = e?.code ?? e?.name ?? '';
  if (/ECONNREFUSED|ECONNRESET|EPIPE|ENOTFOUND|EAI_AGAIN|socket|ETIMEDOUT|Timeout|Abort/i.test(code)) return 'network';
  if (/ENOSPC|EACCES|EROFS/.test(code)) return 'storage';
  return 'other';
}
