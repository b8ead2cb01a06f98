// The ingest's own RTMP protocol pieces, on bytes as real encoders write them:
// the chunk reader (extended timestamps, type 3 headers, chunk size changes,
// interleaved chunk streams, Abort, every limit), the AMF0 decoder's refusals,
// the handshake answer, and how the connection caps count addresses.
import { createHmac } from 'node:crypto';
import t, { type Test } from 'tap';
import { decodeAmf0, encodeAmf0 } from '../../../ingest/rtmp/amf0.ts';
import { ChunkReader, MAX_CHUNK_STREAM_IDS, type ChunkLimits, type RtmpMessage } from '../../../ingest/rtmp/chunk-reader.ts';
import { clientAddressKey as addressKey } from '../../../common/client-address.ts';
import { ConnectionLimits, REFUSAL_SLOTS } from '../../../ingest/rtmp/connection-limits.ts';
import { serverHandshake } from '../../../ingest/rtmp/handshake.ts';
import { RtmpProtocolError } from '../../../ingest/rtmp/protocol-error.ts';
import { amf0, chunk } from '../../../harness/rtmp-wire.ts';

const LIMITS: ChunkLimits = { maxMessageBytes: 64 * 1024, maxBufferedBytes: 64 * 1024, maxAssembling: 8 };

/** Feeds bytes (optionally split into small reads) and returns every message. */
function readAll(reader: ChunkReader, data: Buffer, readSize = data.length): RtmpMessage[] {
  const messages: RtmpMessage[] = [];
  for (let start = 0; start < data.length; start += readSize) {
    const piece = data.subarray(start, start + readSize);
    let offset = 0;
    while (offset < piece.length) {
      const r = reader.read(piece, offset);
      offset = r.offset;
      if (r.message) messages.push(r.message);
    }
  }
  return messages;
}

function refusedWith(t: Test, fn: () => unknown, reason: string): void {
  try {
    fn();
    t.fail(`expected an RtmpProtocolError (${reason})`);
  } catch (error) {
    t.ok(error instanceof RtmpProtocolError, `an RtmpProtocolError: ${(error as Error).message}`);
    t.equal((error as RtmpProtocolError).reason, reason);
  }
}

t.test('messages split over chunks come out whole, whatever the read sizes', async (t) => {
  const payload = Buffer.from(Array.from({ length: 1000 }, (_, i) => i & 0xff));
  const bytes = Buffer.concat([
    chunk(payload, { csid: 6, type: 9, streamId: 1, timestamp: 40 }),
    chunk(Buffer.from('abc'), { csid: 4, type: 8, streamId: 1, timestamp: 41 }),
  ]);
  for (const readSize of [1, 7, 128, bytes.length]) {
    const messages = readAll(new ChunkReader(LIMITS), bytes, readSize);
    t.equal(messages.length, 2, `read ${readSize} bytes at a time`);
    t.same(messages[0]!.payload, payload);
    t.same({ type: messages[0]!.type, streamId: messages[0]!.streamId, timestamp: messages[0]!.timestamp }, { type: 9, streamId: 1, timestamp: 40 });
    t.same(messages[1]!.payload, Buffer.from('abc'));
  }
});

t.test('type 1, 2 and 3 headers: deltas, and a type 3 header starting a message repeats the last delta', async (t) => {
  const reader = new ChunkReader(LIMITS);
  const type1 = Buffer.from([0x46, 0, 0, 33, 0, 0, 2, 9, 0xaa, 0xbb]); // csid 6, delta 33, length 2, video
  const type2 = Buffer.from([0x86, 0, 0, 34, 0xcc, 0xdd]); // delta 34, same length and type
  const type3 = Buffer.from([0xc6, 0xee, 0xff]); // delta 34 again
  const messages = readAll(reader, Buffer.concat([chunk(Buffer.from([1, 2]), { csid: 6, type: 9, streamId: 1, timestamp: 1000 }), type1, type2, type3]));
  t.same(
    messages.map((m) => m.timestamp),
    [1000, 1033, 1067, 1101],
  );
  t.same(
    messages.map((m) => m.streamId),
    [1, 1, 1, 1],
    'the message stream id carries over',
  );
  t.same(messages[3]!.payload, Buffer.from([0xee, 0xff]));
});

t.test('extended timestamps, also repeated on type 3 continuation chunks', async (t) => {
  const payload = Buffer.alloc(200, 7);
  const header = Buffer.from([0x06, 0xff, 0xff, 0xff, 0, 0, 200, 9, 1, 0, 0, 0, 0x01, 0x00, 0x00, 0x00]); // ts 0xFFFFFF + extended 0x01000000
  const bytes = Buffer.concat([header, payload.subarray(0, 128), Buffer.from([0xc6, 0x01, 0x00, 0x00, 0x00]), payload.subarray(128)]);
  const [message] = readAll(new ChunkReader(LIMITS), bytes, 3);
  t.equal(message?.timestamp, 0x01000000);
  t.same(message?.payload, payload);
});

t.test('a new chunk size applies from the next chunk', async (t) => {
  const reader = new ChunkReader(LIMITS);
  reader.setChunkSize(4096);
  const payload = Buffer.alloc(3000, 1);
  const [message] = readAll(reader, chunk(payload, { csid: 6, type: 9, chunkSize: 4096 }));
  t.equal(message?.payload.length, 3000);
});

t.test('interleaved chunk streams and Abort', async (t) => {
  const reader = new ChunkReader(LIMITS);
  const video = chunk(Buffer.alloc(256, 9), { csid: 6, type: 9 });
  const audio = chunk(Buffer.alloc(10, 8), { csid: 4, type: 8 });
  // first chunk of video, the audio message, the rest of video
  const messages = readAll(reader, Buffer.concat([video.subarray(0, 12 + 128), audio, video.subarray(12 + 128)]));
  t.same(
    messages.map((m) => m.type),
    [8, 9],
  );
  t.equal(messages[1]!.payload.length, 256);
  // Abort drops a message under way; the stream can start a new one.
  readAll(reader, video.subarray(0, 12 + 128));
  reader.abort(6);
  const [next] = readAll(reader, chunk(Buffer.from('new'), { csid: 6, type: 9 }));
  t.same(next?.payload, Buffer.from('new'));
});

t.test('limits: declared size, bytes held, chunk streams at once, chunk stream ids, chunk size', async (t) => {
  refusedWith(t, () => readAll(new ChunkReader(LIMITS), chunk(Buffer.alloc(10), { type: 9, declaredLength: 0xffffff })), 'message_too_large');
  refusedWith(t, () => readAll(new ChunkReader(LIMITS), chunk(Buffer.alloc(10), { type: 9, declaredLength: 64 * 1024 + 1 })), 'message_too_large');
  const nine = Buffer.concat(Array.from({ length: 9 }, (_, i) => chunk(Buffer.alloc(128), { csid: 3 + i, type: 9, declaredLength: 1000 })));
  refusedWith(t, () => readAll(new ChunkReader(LIMITS), nine), 'chunk_stream');
  const held = Buffer.concat(
    Array.from({ length: 2 }, (_, i) =>
      chunk(Buffer.alloc(40_000), { csid: 3 + i, type: 9, declaredLength: 60_000, chunkSize: 40_000 }).subarray(0, 12 + 40_000),
    ),
  );
  const reader = new ChunkReader(LIMITS);
  reader.setChunkSize(40_000);
  refusedWith(t, () => readAll(reader, held), 'buffer_limit');
  const manyIds = Buffer.concat(
    Array.from({ length: MAX_CHUNK_STREAM_IDS + 1 }, (_, i) => {
      const c = chunk(Buffer.alloc(1), { csid: 2, type: 4 });
      return Buffer.concat([Buffer.from([0x00, i]), c.subarray(1)]); // two-byte basic headers: csid 64 + i
    }),
  );
  refusedWith(t, () => readAll(new ChunkReader(LIMITS), manyIds), 'chunk_stream');
  refusedWith(t, () => readAll(new ChunkReader(LIMITS), Buffer.from([0xc5, 1, 2, 3])), 'chunk_stream');
  refusedWith(t, () => readAll(new ChunkReader(LIMITS), Buffer.from([0x45, 0, 0, 0, 0, 0, 1, 9, 1])), 'chunk_stream');
  const interrupting = chunk(Buffer.alloc(200), { csid: 6, type: 9 }).subarray(0, 12 + 128);
  refusedWith(t, () => readAll(new ChunkReader(LIMITS), Buffer.concat([interrupting, interrupting])), 'chunk_stream');
  refusedWith(t, () => new ChunkReader(LIMITS).setChunkSize(0), 'chunk_size');
  refusedWith(t, () => new ChunkReader(LIMITS).setChunkSize(0x80000000), 'chunk_size');
});

t.test('memory follows what was sent, not what was declared', async (t) => {
  const reader = new ChunkReader({ maxMessageBytes: 0xffffff, maxBufferedBytes: 0x2000000, maxAssembling: 8 });
  const before = process.memoryUsage().arrayBuffers;
  const headers = Buffer.concat(
    Array.from({ length: 8 }, (_, i) => chunk(Buffer.alloc(128), { csid: 3 + i, type: 9, declaredLength: 0xffffff }).subarray(0, 12 + 128)),
  );
  readAll(reader, headers);
  const grown = process.memoryUsage().arrayBuffers - before;
  t.ok(grown < 1024 * 1024, `8 messages declaring 16 MiB each hold ${grown} bytes`);
});

t.test('an admitted publisher: messages allocated whole come out the same, whatever the reads and interleaving', async (t) => {
  const limits: ChunkLimits = { maxMessageBytes: 1 << 20, maxBufferedBytes: 2 << 20, maxAssembling: 8, preallocate: true };
  const video = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7) & 0xff));
  const audio = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 3) & 0xff));
  const v = chunk(video, { csid: 6, type: 9, streamId: 1, timestamp: 40, chunkSize: 4096 });
  const a = chunk(audio, { csid: 4, type: 8, streamId: 1, timestamp: 41, chunkSize: 4096 });
  // the audio message between the video message's first and second chunks, as encoders interleave them
  const bytes = Buffer.concat([v.subarray(0, 12 + 4096), a, v.subarray(12 + 4096), a]);
  for (const readSize of [1, 13, 1448, 4096, 65536, bytes.length]) {
    const reader = new ChunkReader(limits);
    reader.setChunkSize(4096);
    const messages = readAll(reader, bytes, readSize);
    t.same(
      messages.map((m) => m.type),
      [8, 9, 8],
      `read ${readSize} bytes at a time`,
    );
    t.ok(messages[1]!.payload.equals(video), 'the video message is whole');
    t.ok(messages[0]!.payload.equals(audio) && messages[2]!.payload.equals(audio), 'the audio messages are whole');
  }
});

t.test('a message whole in one read is a view of that read when it is most of it, and a copy otherwise', async (t) => {
  const reader = new ChunkReader(LIMITS);
  const alone = chunk(Buffer.alloc(100, 5), { csid: 4, type: 8 });
  const [viewed] = readAll(reader, alone);
  alone.fill(0xee);
  t.equal(viewed!.payload[0], 0xee, 'a message that is most of the read is not copied: it sees the read change');
  const among = Buffer.concat([
    chunk(Buffer.alloc(100, 6), { csid: 4, type: 8 }),
    chunk(Buffer.alloc(100, 7), { csid: 4, type: 8 }),
    chunk(Buffer.alloc(100, 8), { csid: 4, type: 8 }),
  ]);
  const copied = readAll(reader, among);
  among.fill(0xee);
  t.same(
    copied.map((m) => m.payload[0]),
    [6, 7, 8],
    'small messages among others are copied out, so they do not keep the whole read alive',
  );
});

t.test('an admitted publisher: messages allocated whole count as held at once, within the limit', async (t) => {
  const limits: ChunkLimits = { maxMessageBytes: 64 * 1024, maxBufferedBytes: 100_000, maxAssembling: 8, preallocate: true };
  // Two 60,000-byte messages under way: the second cannot be allocated whole, so it grows
  // with its bytes, and the bytes held (60,000 + what arrived) stay within the limit.
  const first = chunk(Buffer.alloc(60_000, 1), { csid: 3, type: 9, chunkSize: 128 });
  const second = chunk(Buffer.alloc(60_000, 2), { csid: 4, type: 9, chunkSize: 128 });
  const reader = new ChunkReader(limits);
  readAll(reader, Buffer.concat([first.subarray(0, 12 + 128), second.subarray(0, 12 + 128)]));
  refusedWith(t, () => readAll(reader, second.subarray(12 + 128)), 'buffer_limit');
  // Alone, each fits: allocated whole, then released when complete.
  const alone = new ChunkReader(limits);
  const messages = readAll(alone, Buffer.concat([first, second]), 1000);
  t.same(
    messages.map((m) => m.payload.length),
    [60_000, 60_000],
  );
  t.ok(messages[0]!.payload.every((b) => b === 1) && messages[1]!.payload.every((b) => b === 2), 'both whole');
});

t.test('AMF0: well-formed commands decode; malformed ones are refused, never thrown as anything else', async (t) => {
  t.same(decodeAmf0(amf0('connect', 1, { app: 'live', tcUrl: 'rtmp://x/live' }, null)), [
    'connect',
    1,
    Object.assign(Object.create(null), { app: 'live', tcUrl: 'rtmp://x/live' }),
    null,
  ]);
  const proto = decodeAmf0(amf0({ __proto__: 'x' } as never))[0] as Record<string, unknown>;
  t.equal(Object.getPrototypeOf(proto), null, 'objects have no prototype to pollute');
  t.same(
    decodeAmf0(encodeAmf0('onStatus', 0, null, { level: 'error', code: 'X', description: 'Why.' })).slice(0, 2),
    ['onStatus', 0],
    'our encoder round-trips',
  );
  const malformed: Array<[string, Buffer]> = [
    ['3-byte invoke', Buffer.from([0x00, 0x01, 0x02])],
    ['string past the end', Buffer.from([0x02, 0xff, 0xff, 0x61])],
    ['long string past the end', Buffer.from([0x0c, 0xff, 0xff, 0xff, 0xff])],
    ['strict array count beyond the bytes', Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x05])],
    ['unterminated object', Buffer.from([0x03, 0x00, 0x01, 0x61, 0x05])],
    ['reference marker', Buffer.from([0x07, 0x00, 0x01])],
    ['AMF3 switch', Buffer.from([0x11, 0x00])],
    ['nesting beyond 16', Buffer.concat([Buffer.from([3]), Buffer.from('000003'.repeat(40), 'hex')])],
    ['empty key not ending the object', Buffer.from([0x03, 0x00, 0x00, 0x05])],
  ];
  for (const [what, bytes] of malformed) refusedWith(t, () => decodeAmf0(bytes), 'amf'), t.comment(what);
});

t.test('handshake: a plain C1 is echoed; a Flash-signed C1 gets a signed S1', async (t) => {
  const plain = Buffer.alloc(1536, 5);
  const answer = serverHandshake(plain);
  t.equal(answer.length, 1 + 1536 * 2);
  t.equal(answer[0], 3);
  t.same(answer.subarray(1, 1537), plain);
  // A C1 signed the way Flash Player (and ffmpeg) sign it, digest keyed off bytes 8–11.
  const c1 = Buffer.alloc(1536, 1);
  c1.writeUInt32BE(0x80000702, 4);
  const at = ((c1[8]! + c1[9]! + c1[10]! + c1[11]!) % 728) + 12;
  const digest = createHmac('sha256', 'Genuine Adobe Flash Player 001')
    .update(Buffer.concat([c1.subarray(0, at), c1.subarray(at + 32)]))
    .digest();
  digest.copy(c1, at);
  const signed = serverHandshake(c1);
  const s1 = signed.subarray(1, 1537);
  const s1At = ((s1[8]! + s1[9]! + s1[10]! + s1[11]!) % 728) + 12;
  const expected = createHmac('sha256', 'Genuine Adobe Flash Media Server 001')
    .update(Buffer.concat([s1.subarray(0, s1At), s1.subarray(s1At + 32)]))
    .digest();
  t.same(s1.subarray(s1At, s1At + 32), expected, 'S1 carries a valid server digest');
});

t.test('connection caps count IPv4 addresses, and IPv6 by /64', async (t) => {
  t.equal(addressKey('203.0.113.7'), '203.0.113.7');
  t.equal(addressKey('::ffff:203.0.113.7'), '203.0.113.7');
  t.equal(addressKey('2001:db8:1:2:aaaa::1'), addressKey('2001:db8:1:2:bbbb:cccc:dddd:eeee'));
  t.not(addressKey('2001:db8:1:2::1'), addressKey('2001:db8:1:3::1'));
  t.equal(addressKey('::1'), '0:0:0:0::/64');
  const limits = new ConnectionLimits(100, 2);
  const a = limits.accept('a');
  limits.accept('a');
  const third = limits.accept('a');
  t.same(third.verdict, { kind: 'refuse', reason: 'address_full' }, 'the third from one address is refused');
  t.same(limits.accept('b').verdict, { kind: 'admit' }, 'another address is not');
  a.release();
  third.release();
  t.same(limits.accept('a').verdict, { kind: 'admit' }, 'a closed connection frees its place');
  const full = new ConnectionLimits(1, 100);
  full.accept('x');
  for (let i = 0; i < REFUSAL_SLOTS; i++) t.equal(full.accept(`y${i}`).verdict.kind, 'refuse');
  t.equal(full.accept('z').verdict.kind, 'drop', 'beyond the refusal slots a connection is dropped');
});
