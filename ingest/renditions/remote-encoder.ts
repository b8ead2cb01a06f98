// Renditions and thumbnails from the transcoder role over HTTP
// (TTEOK_TRANSCODER=remote): one POST per source segment on a keep-alive
// connection pool, with a deadline. Every failure is a RenditionEncoderError
// whose reason the driver counts: the transcoder full (503: busy), too slow
// (504 or the deadline: timeout), the media refused (4xx), down or
// unreachable. None of them touches the source.
import { Agent, request } from 'node:http';
import { decodeRenditionsBody, encodeSegmentBody, RENDITIONS_CONTENT_TYPE, SEGMENT_CONTENT_TYPE } from '../../common/transcode/wire.ts';
import { type EncodedRendition, type EncodeInput, RenditionEncoderError, type RenditionEncoder, type ThumbnailInput } from './rendition-encoder.ts';

export interface RemoteEncoderOptions {
  /** The transcoder's base URL (http://host:port). */
  url: string;
  /** A request not answered within this is abandoned (timeout). Default 20 s. */
  timeoutMs?: number;
  /** Connections kept to the transcoder. Default 16. */
  maxSockets?: number;
}

const MAX_ANSWER_BYTES = 256 * 1024 * 1024;

export class RemoteRenditionEncoder implements RenditionEncoder {
  private readonly agent: Agent;
  private readonly base: URL;
  private readonly timeoutMs: number;

  constructor(options: RemoteEncoderOptions) {
    this.base = new URL(options.url);
    this.timeoutMs = options.timeoutMs ?? 20_000;
    this.agent = new Agent({ keepAlive: true, maxSockets: options.maxSockets ?? 16, keepAliveMsecs: 1000 });
  }

  async encode(input: EncodeInput, signal?: AbortSignal): Promise<EncodedRendition[]> {
    const query = new URLSearchParams({ presets: input.presets.join(',') });
    if (input.sourceHeight !== undefined) query.set('sourceHeight', String(input.sourceHeight));
    const answer = await this.post(`/v1/renditions?${query}`, encodeSegmentBody(input), signal);
    if (answer.type !== RENDITIONS_CONTENT_TYPE)
      throw new RenditionEncoderError(`the transcoder answered ${answer.type}, not ${RENDITIONS_CONTENT_TYPE}`, 'error');
    try {
      return decodeRenditionsBody(answer.body);
    } catch (error) {
      throw new RenditionEncoderError(`the transcoder's answer is malformed: ${(error as Error).message}`, 'error');
    }
  }

  async thumbnail(input: ThumbnailInput, signal?: AbortSignal): Promise<Uint8Array> {
    const answer = await this.post('/v1/thumbnail', encodeSegmentBody(input), signal);
    if (answer.type !== 'image/jpeg') throw new RenditionEncoderError(`the transcoder answered ${answer.type}, not image/jpeg`, 'error');
    return answer.body;
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }

  private post(path: string, body: Uint8Array, signal?: AbortSignal): Promise<{ type: string; body: Uint8Array }> {
    return new Promise((resolve, reject) => {
      const fail = (message: string, reason: RenditionEncoderError['reason']) => reject(new RenditionEncoderError(message, reason));
      const req = request(new URL(path, this.base), {
        method: 'POST',
        agent: this.agent,
        headers: { 'content-type': SEGMENT_CONTENT_TYPE, 'content-length': body.length },
        signal,
      });
      const deadline = setTimeout(() => {
        fail(`the transcoder did not answer within ${this.timeoutMs} ms`, 'timeout');
        req.destroy();
      }, this.timeoutMs);
      req.on('error', (error: NodeJS.ErrnoException) => {
        clearTimeout(deadline);
        if (error.name === 'AbortError') fail('cancelled', 'cancelled');
        else fail(`the transcoder at ${this.base.origin} is unreachable: ${error.code ?? error.message}`, 'unreachable');
      });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_ANSWER_BYTES) {
            fail('the transcoder answer is too large', 'error');
            req.destroy();
          } else chunks.push(chunk);
        });
        res.on('error', () => undefined);
        res.on('end', () => {
          clearTimeout(deadline);
          const answer = Buffer.concat(chunks);
          const status = res.statusCode ?? 0;
          if (status === 200) {
            resolve({
              type: String(res.headers['content-type'] ?? '')
                .split(';')[0]!
                .trim(),
              body: new Uint8Array(answer.buffer, answer.byteOffset, answer.byteLength),
            });
            return;
          }
          let message = answer.toString('utf8').slice(0, 500);
          try {
            message = (JSON.parse(message) as { message?: string }).message ?? message;
          } catch {
            // not JSON: the text as it is
          }
          const reason = status === 503 ? 'busy' : status === 504 ? 'timeout' : status >= 400 && status < 500 ? 'refused' : 'error';
          fail(`the transcoder answered ${status}: ${message}`, reason);
        });
      });
      req.end(body);
    });
  }
}
