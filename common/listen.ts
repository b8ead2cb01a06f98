// The one way every listener of tteok starts (the probe servers, the RTMP and
// RTMPS ports): a promise of the port bound, rejected by a listen error.
import type { Server } from 'node:net';

/** Listens and resolves with the port bound (the one asked for, or the kernel's pick for 0). */
export function listenOn(server: Server, port: number, host: string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const a = server.address();
      resolve(typeof a === 'object' && a ? a.port : port);
    });
  });
}
