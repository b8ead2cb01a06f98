// An admitted publisher as raw bytes: the commands up to NetStream.Publish.Start,
// then audio and video messages built by hand (FLV tag bodies, legacy or
// Enhanced RTMP) with any timestamps, so tests can send what no encoder would
// (8 MiB codec records, a GOP that never ends, media hours ahead of the clock).
// Real encoder output comes from the FLV fixtures ffmpeg 9 wrote
// (test/fixtures/), byte for byte what it publishes.
import { fileURLToPath } from 'node:url';
import { readFlvTags } from './flv-file.ts';
import { chunk, clientHandshake, connectCommand, createStreamCommand, openRaw, publishCommand, type RawConnection } from './rtmp-wire.ts';
import { waitFor } from './wait.ts';

/** The chunk size the publisher announces, so an 8 MiB message is a few hundred chunks. */
export const PUBLISH_CHUNK_SIZE = 65536;

const fixture = (name: string) => fileURLToPath(new URL(`../test/fixtures/${name}`, import.meta.url));

/**
 * HEVC from x265 over Enhanced RTMP (hvc1): the sequence start's tag body.
 * Frames to go with it come from hevcFrame: the fixture's own carry B-frame
 * composition offsets, which repeated out of order no muxer takes.
 */
export const HEVC = (() => {
  const video = readFlvTags(fixture('hevc-aac.flv')).filter((t) => t.type === 9);
  return { config: Buffer.from(video.find((t) => (t.body[0]! & 0x0f) === 0)!.body) };
})();

/** Every tag of a fixture, as it was recorded (type 8 audio, 9 video). */
export function fixtureTags(name: string): Array<{ type: 8 | 9; timestampMs: number; body: Buffer }> {
  return readFlvTags(fixture(name))
    .filter((t): t is typeof t & { type: 8 | 9 } => t.type === 8 || t.type === 9)
    .map((t) => ({ type: t.type, timestampMs: t.timestampMs, body: Buffer.from(t.body) }));
}

/** An Enhanced RTMP video tag body: frame type (1 key, 2 inter), packet type, FourCC, payload. */
export function enhancedVideo(frameType: number, packetType: number, fourcc: string, payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x80 | (frameType << 4) | packetType]), Buffer.from(fourcc, 'latin1'), payload]);
}

/** An HEVC frame (CodedFramesX: no composition offset) of `bytes` length-prefixed filler NAL bytes. */
export function hevcFrame(keyframe: boolean, bytes: number): Buffer {
  const nal = Buffer.alloc(4 + bytes, 0xff);
  nal.writeUInt32BE(bytes, 0);
  nal[4] = 38 << 1; // FD_NUT, filler data
  nal[5] = 1;
  return enhancedVideo(keyframe ? 1 : 2, 3, 'hvc1', nal);
}

/** One audio (8) or video (9) message on its own chunk stream, at the publisher's chunk size. */
export function mediaMessage(type: 8 | 9, timestampMs: number, body: Buffer): Buffer {
  return chunk(body, { type, csid: type === 9 ? 6 : 4, streamId: 1, timestamp: timestampMs, chunkSize: PUBLISH_CHUNK_SIZE });
}

const setChunkSize = () => {
  const size = Buffer.alloc(4);
  size.writeUInt32BE(PUBLISH_CHUNK_SIZE);
  return chunk(size, { csid: 2, type: 1 });
};

/** Text the ingest sent, for matching onStatus codes and descriptions. */
export const receivedText = (conn: RawConnection) => conn.received().toString('latin1');

/** Connects and publishes with `key`; resolves once NetStream.Publish.Start arrived. */
export async function openPublish(port: number, key: string, options: { localAddress?: string } = {}): Promise<RawConnection> {
  const conn = await openRaw(port, '127.0.0.1', options.localAddress);
  conn.socket.setNoDelay(true);
  conn.send(Buffer.concat([clientHandshake(), connectCommand(), createStreamCommand(), publishCommand(key), setChunkSize()]));
  await waitFor(
    `the publish with ${key} to start`,
    () => {
      const text = receivedText(conn);
      if (text.includes('NetStream.Publish.') && !text.includes('NetStream.Publish.Start'))
        throw new Error(`publish refused: ${text.slice(text.indexOf('NetStream.Publish.'))}`);
      return text.includes('NetStream.Publish.Start');
    },
    { timeoutMs: 15_000, intervalMs: 20 },
  );
  return conn;
}

/** Writes and resolves once the socket took the bytes (or closed): a sender that respects backpressure. */
export function sendAndDrain(conn: RawConnection, data: Buffer): Promise<void> {
  return new Promise((resolve) => {
    if (conn.socket.destroyed || !conn.socket.writable) return resolve();
    conn.socket.write(data, () => resolve());
  });
}
