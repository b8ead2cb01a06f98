// Small helpers around @kubernetes/client-node shared by the controller, the
// ingest (key source, stream claims) and the gateway (stream view): loading
// the kubeconfig, raw JSON requests for what the generated clients do badly,
// patch content types and API error classification.
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { request as httpRequest } from 'node:http';
import { ApiException, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';

export { podNamespace, SERVICE_ACCOUNT_NAMESPACE_FILE } from '../shared-env.ts';

/** In a pod: the service account; elsewhere: $KUBECONFIG or ~/.kube/config (client-node's default order). */
export function loadKubeConfig(kubeconfigPath?: string): KubeConfig {
  const kc = new KubeConfig();
  if (kubeconfigPath) kc.loadFromFile(kubeconfigPath);
  else kc.loadFromDefault();
  return kc;
}

/** Options for the generated clients' patch calls: an RFC 7386 merge patch. */
export const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
/** Options for the generated clients' patch calls: an RFC 6902 JSON patch (with `test` operations for optimistic checks). */
export const JSON_PATCH = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch);

export function statusCode(error: unknown): number | undefined {
  if (error instanceof ApiException) return error.code;
  const e = error as { code?: unknown; statusCode?: unknown } | undefined;
  if (typeof e?.statusCode === 'number') return e.statusCode;
  if (typeof e?.code === 'number') return e.code;
  return undefined;
}

export const isNotFound = (error: unknown): boolean => statusCode(error) === 404;
export const isConflict = (error: unknown): boolean => statusCode(error) === 409;
/** 422 from a failed JSON-patch `test` operation is a conflict in disguise. */
export const isPatchTestFailed = (error: unknown): boolean => statusCode(error) === 422 && /test operation|testing value/i.test(errorMessage(error));

/** The API server's message for an error (the Status' message), without the request body. */
export function errorMessage(error: unknown): string {
  if (error instanceof ApiException) {
    const body = error.body as unknown;
    if (typeof body === 'string') {
      try {
        const parsed = JSON.parse(body) as { message?: string };
        if (parsed.message) return parsed.message;
      } catch {
        // not JSON
      }
      return body.slice(0, 500);
    }
    if (body && typeof body === 'object' && typeof (body as { message?: unknown }).message === 'string') return (body as { message: string }).message;
    return `HTTP ${error.code}`;
  }
  return error instanceof Error ? error.message : String(error);
}

export class KubeHttpError extends Error {
  override name = 'KubeHttpError';
  constructor(
    readonly statusCode: number,
    message: string,
    readonly reason?: string,
  ) {
    super(message);
  }
}

export interface RawRequestOptions {
  method?: string;
  body?: unknown;
  contentType?: string;
  /** Whole-request timeout; the request is destroyed when it passes. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * Opens a request to the API server with the kubeconfig's credentials and TLS
 * settings, as plain JSON (no typed deserialization: timestamps stay strings).
 * Resolves with the response once headers arrived; the caller reads the body.
 */
export async function openRequest(kc: KubeConfig, path: string, options: RawRequestOptions = {}): Promise<import('node:http').IncomingMessage> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const url = new URL(cluster.server.replace(/\/$/, '') + path);
  const opts: RequestOptions = { method: options.method ?? 'GET', headers: { accept: 'application/json' } };
  await kc.applyToHTTPSOptions(opts);
  const headers = opts.headers as Record<string, string>;
  let payload: Buffer | undefined;
  if (options.body !== undefined) {
    payload = Buffer.from(JSON.stringify(options.body));
    headers['content-type'] = options.contentType ?? 'application/json';
    headers['content-length'] = String(payload.length);
  }
  const requestFn = url.protocol === 'http:' ? httpRequest : httpsRequest;
  return new Promise((resolve, reject) => {
    const req = requestFn(url, opts, resolve);
    let timer: NodeJS.Timeout | undefined;
    if (options.timeoutMs !== undefined) {
      timer = setTimeout(() => req.destroy(new Error(`${opts.method} ${path} timed out after ${options.timeoutMs} ms`)), options.timeoutMs);
      req.on('close', () => clearTimeout(timer));
    }
    if (options.signal) {
      if (options.signal.aborted) req.destroy(new Error('aborted'));
      else options.signal.addEventListener('abort', () => req.destroy(new Error('aborted')), { once: true });
    }
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end(payload);
  });
}

/** A JSON request to the API server; throws KubeHttpError for a non-2xx answer. */
export async function rawJson<T>(kc: KubeConfig, path: string, options: RawRequestOptions = {}): Promise<T> {
  const res = await openRequest(kc, path, { timeoutMs: 30_000, ...options });
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  const status = res.statusCode ?? 0;
  if (status < 200 || status >= 300) {
    let message = text.slice(0, 500);
    let reason: string | undefined;
    try {
      const s = JSON.parse(text) as { message?: string; reason?: string };
      message = s.message ?? message;
      reason = s.reason;
    } catch {
      // not a Status
    }
    throw new KubeHttpError(status, message || `HTTP ${status}`, reason);
  }
  return JSON.parse(text) as T;
}
