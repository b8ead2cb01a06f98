// Records what a real publisher sends, to seed the RTMP fuzz test:
//   node --import tsx test/ingest/rtmp/fuzz/capture-seed.ts <ingest rtmp port> <out file> [bytes]
// then point ffmpeg (or OBS) at rtmp://127.0.0.1:<printed port>/live/<key>.
// It relays both ways to the ingest and keeps the first [bytes] (default
// 24576) the client sent. Use a throwaway key: the seed holds it in clear.
import { writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';

const [targetPort, out, limitText] = process.argv.slice(2);
if (!targetPort || !out) {
  process.stderr.write('usage: capture-seed.ts <ingest rtmp port> <out file> [bytes]\n');
  process.exit(2);
}
const limit = Number(limitText ?? 24576);
const server = createServer((client) => {
  const upstream = connect({ port: Number(targetPort), host: '127.0.0.1' });
  const kept: Buffer[] = [];
  let size = 0;
  client.on('data', (d: Buffer) => {
    if (size < limit) {
      kept.push(d.subarray(0, limit - size));
      size += Math.min(d.length, limit - size);
      if (size >= limit) {
        writeFileSync(out, Buffer.concat(kept));
        process.stdout.write(`wrote ${size} bytes to ${out}\n`);
        process.exit(0);
      }
    }
    upstream.write(d);
  });
  upstream.on('data', (d: Buffer) => client.write(d));
  client.on('close', () => upstream.destroy());
  upstream.on('close', () => client.destroy());
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`relaying on port ${typeof address === 'object' && address ? address.port : '?'}\n`);
});
