// A LowLatencySource across the network: the holding ingest's HTTP route
// `GET /ll/<namespace>/<name>/<file>` (common/low-latency.ts), as the
// gateway's LL origin calls it in Kubernetes. The status, Content-Type and
// Cache-Control are the ingest's own; the caller bounds the time with
// `signal`.
import { LOW_LATENCY_PATH_PREFIX, type LowLatencyRequest, type LowLatencyResponse, type LowLatencySource } from '../../common/low-latency.ts';

/** Above any part, segment or playlist the ingest holds: a larger answer is refused, not buffered. */
const MAX_BODY_BYTES = 64 * 1024 * 1024;

export class HttpLowLatencySource implements LowLatencySource {
  /** `baseUrl`: `http://<host>:<port>`, the holder's HTTP port. */
  constructor(private readonly baseUrl: string) {}

  async serve(request: LowLatencyRequest, signal: AbortSignal): Promise<LowLatencyResponse> {
    const { ref, file, blocking } = request;
    // The file was matched against the media layout's names (letters, digits, _ . - and /): nothing to escape but the stream.
    const url = new URL(`${LOW_LATENCY_PATH_PREFIX}/${encodeURIComponent(ref.namespace)}/${encodeURIComponent(ref.name)}/${file}`, this.baseUrl);
    if (blocking.msn !== undefined) url.searchParams.set('_HLS_msn', String(blocking.msn));
    if (blocking.part !== undefined) url.searchParams.set('_HLS_part', String(blocking.part));
    if (blocking.skip !== undefined) url.searchParams.set('_HLS_skip', blocking.skip);
    const response = await fetch(url, { signal, redirect: 'error' });
    const length = Number(response.headers.get('content-length') ?? '0');
    if (length > MAX_BODY_BYTES) {
      await response.body?.cancel();
      throw new Error(`the holder answered ${length} bytes, above ${MAX_BODY_BYTES}`);
    }
    const body = new Uint8Array(await response.arrayBuffer());
    return {
      status: response.status,
      contentType: response.headers.get('content-type') ?? 'application/octet-stream',
      cacheControl: response.headers.get('cache-control') ?? 'no-store',
      body,
    };
  }
}
