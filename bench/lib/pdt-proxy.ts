// nginx-rtmp's HLS with program date times, so the same player measures the
// same now − playingDate on it as on tteok. nginx-rtmp writes no
// EXT-X-PROGRAM-DATE-TIME, but with `hls_fragment_naming system` each
// fragment is named after the wall-clock time (ms) at which nginx opened it:
// when its first frame arrived, which is what tteok's program date time
// records. This loopback proxy passes nginx's HLS through and adds, before
// each fragment of a playlist, the date its name carries.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Adds `#EXT-X-PROGRAM-DATE-TIME` before each fragment named `<ms since the epoch>.ts`. */
export function withProgramDateTimes(playlist: string): string {
  const lines = playlist.split('\n');
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.startsWith('#EXTINF:')) {
      const uri = lines.slice(i + 1).find((l) => l.trim() !== '' && !l.startsWith('#'));
      const ms = /(\d{12,})\.ts$/.exec(uri?.trim() ?? '')?.[1];
      if (ms) out.push(`#EXT-X-PROGRAM-DATE-TIME:${new Date(Number(ms)).toISOString()}`);
    }
    out.push(line);
  }
  return out.join('\n');
}

export interface PdtProxy {
  origin: string;
  close(): Promise<void>;
}

export async function startPdtProxy(upstream: string): Promise<PdtProxy> {
  const server: Server = createServer((req, res) => {
    fetch(upstream + (req.url ?? '/'))
      .then(async (up) => {
        const body = Buffer.from(await up.arrayBuffer());
        const isPlaylist = (req.url ?? '').split('?')[0]!.endsWith('.m3u8');
        const out = isPlaylist && up.ok ? Buffer.from(withProgramDateTimes(body.toString('utf8'))) : body;
        res.writeHead(up.status, {
          'content-type': up.headers.get('content-type') ?? 'application/octet-stream',
          'cache-control': up.headers.get('cache-control') ?? 'no-cache',
          'access-control-allow-origin': '*',
          'content-length': String(out.length),
        });
        res.end(out);
      })
      .catch(() => {
        res.writeHead(502).end();
      });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
