// The fragmenter (ingest/packager/fragmenter.ts) uses two mediabunny internals
// that are in none of its typings: every muxer write goes through
// NullTarget.prototype._write(data, pos), and Output._muxer.forceFragmentFinalization()
// ends a fragment at once. Either could change in any release, so mediabunny is
// pinned to an exact version in package.json, and this test says plainly what
// broke when an upgrade changes them: the upgrade is then a code change.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { EncodedAudioPacketSource, EncodedPacket, Mp4OutputFormat, NullTarget, Output } from 'mediabunny';
import { ROOT } from '../../../harness/chart-tools.ts';

const UPGRADE =
  "mediabunny changed an internal that ingest/packager/fragmenter.ts relies on; read the new version's source, adapt the fragmenter, then this test";

t.test('mediabunny is pinned to one exact version, and that version is installed', async (t) => {
  const declared = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies.mediabunny;
  t.match(
    declared,
    /^\d+\.\d+\.\d+$/,
    `package.json declares mediabunny "${declared}": it must be an exact version (no ^ or ~), since tteok uses its internals`,
  );
  const installed = (JSON.parse(readFileSync(join(ROOT, 'node_modules/mediabunny/package.json'), 'utf8')) as { version: string }).version;
  t.equal(installed, declared, `node_modules has mediabunny ${installed}, package.json pins ${declared}: run npm ci`);
});

t.test('NullTarget.prototype._write(data, pos) exists', async (t) => {
  const write = (NullTarget.prototype as unknown as { _write?: unknown })._write;
  t.equal(typeof write, 'function', `NullTarget.prototype._write is gone (${typeof write}). ${UPGRADE}`);
  t.equal((write as (...args: unknown[]) => unknown).length, 2, `NullTarget.prototype._write no longer takes (data, pos). ${UPGRADE}`);
});

t.test('every muxer write goes through _write, and forceFragmentFinalization ends the fragment at once', async (t) => {
  const writes: Array<{ data: unknown; pos: unknown }> = [];
  const nullWrite = (NullTarget.prototype as unknown as { _write: (data: Uint8Array, pos: number) => void })._write;
  class RecordingTarget extends NullTarget {
    _write(data: Uint8Array, pos: number): void {
      nullWrite.call(this, data, pos);
      // A copy, as the fragmenter makes: the writer may reuse its buffer for the next write.
      writes.push({ data: data instanceof Uint8Array ? data.slice() : data, pos });
    }
  }
  const moofs: number[] = [];
  const output = new Output({
    target: new RecordingTarget(),
    // Far longer than what is fed: only a forced cut can end the fragment.
    format: new Mp4OutputFormat({ fastStart: 'fragmented', minimumFragmentDuration: 60, onMoof: (_moof, at) => void moofs.push(at) }),
  });
  const audio = new EncodedAudioPacketSource('aac');
  output.addAudioTrack(audio);
  await output.start();

  const frame = 1024 / 48_000;
  const payload = new Uint8Array(200).fill(0x5a);
  for (let i = 0; i < 50; i++) {
    const packet = new EncodedPacket(payload, 'key', i * frame, frame);
    // AAC-LC, 48 kHz, stereo (AudioSpecificConfig 0x11 0x90); the muxer never decodes the frames.
    if (i === 0)
      await audio.add(packet, { decoderConfig: { codec: 'mp4a.40.2', sampleRate: 48_000, numberOfChannels: 2, description: new Uint8Array([0x11, 0x90]) } });
    else await audio.add(packet);
  }
  t.same(moofs, [], 'no fragment yet: mediabunny would wait for 60 s of media');

  const muxer = (output as unknown as { _muxer?: { forceFragmentFinalization?: unknown } })._muxer;
  t.ok(muxer, `Output._muxer is gone. ${UPGRADE}`);
  t.equal(typeof muxer?.forceFragmentFinalization, 'function', `Output._muxer.forceFragmentFinalization is gone. ${UPGRADE}`);
  if (typeof muxer?.forceFragmentFinalization !== 'function') return;
  const writesBefore = writes.length;
  await (muxer.forceFragmentFinalization as () => Promise<void>).call(muxer);
  t.equal(moofs.length, 1, `forceFragmentFinalization no longer writes the fragment at once. ${UPGRADE}`);

  t.ok(writes.length > writesBefore, `the forced fragment was not written through _write. ${UPGRADE}`);
  t.ok(
    writes.every((w) => w.data instanceof Uint8Array && Number.isInteger(w.pos)),
    `_write is no longer called with (Uint8Array, integer position). ${UPGRADE}`,
  );
  // The fragment's bytes, laid out by position, hold a moof at its position and the mdat after it with every frame.
  const end = Math.max(...writes.map((w) => (w.pos as number) + (w.data as Uint8Array).length));
  const file = new Uint8Array(end);
  for (const w of writes) file.set(w.data as Uint8Array, w.pos as number);
  const boxType = (at: number) => new TextDecoder().decode(file.subarray(at + 4, at + 8));
  const at = moofs[0]!;
  t.equal(boxType(at), 'moof', `no moof where onMoof said. ${UPGRADE}`);
  const mdatAt = at + new DataView(file.buffer).getUint32(at);
  t.equal(boxType(mdatAt), 'mdat', `the mdat does not follow the moof. ${UPGRADE}`);
  t.equal(new DataView(file.buffer).getUint32(mdatAt), 8 + 50 * payload.length, `the mdat does not hold exactly the frames fed. ${UPGRADE}`);
  await output.finalize();
});
