// The HLS multivariant playlist of a stream with an adaptive ladder (RFC 8216
// 4.3.4.2): one EXT-X-STREAM-INF per rendition, each pointing at the
// rendition's media playlist beside it. The ingest writes it as the stream's
// `index.m3u8` (the URL frontends already have); the gateway and the tests
// read it back with parseMultivariantPlaylist. A stream without a ladder has
// a media playlist at that key instead: isMultivariant tells them apart.
//
// Each variant carries STABLE-VARIANT-ID (the rendition's name, RFC 8216bis)
// and NAME (not in the RFC, which says clients ignore attributes they do not
// know; hls.js shows it as the level's name).

export interface Variant {
  /** The rendition's name (common/renditions.ts): `source`, `track1`, `480p`, … */
  name: string;
  /** The media playlist, relative to the multivariant playlist. */
  uri: string;
  /** Peak segment bit rate, bit/s. */
  bandwidth: number;
  /** Average segment bit rate, bit/s. */
  averageBandwidth?: number;
  /** Absent for audio only. */
  resolution?: { width: number; height: number };
  frameRate?: number;
  /** RFC 6381 codec strings of every track in the rendition's segments, e.g. ["avc1.64001f", "mp4a.40.2"]. */
  codecs: string[];
}

export function renderMultivariantPlaylist(variants: readonly Variant[]): string {
  const lines = ['#EXTM3U', '#EXT-X-VERSION:7', '#EXT-X-INDEPENDENT-SEGMENTS'];
  for (const v of variants) {
    const attrs = [`BANDWIDTH=${Math.max(1, Math.round(v.bandwidth))}`];
    if (v.averageBandwidth !== undefined) attrs.push(`AVERAGE-BANDWIDTH=${Math.max(1, Math.round(v.averageBandwidth))}`);
    if (v.resolution) attrs.push(`RESOLUTION=${v.resolution.width}x${v.resolution.height}`);
    if (v.frameRate !== undefined) attrs.push(`FRAME-RATE=${v.frameRate.toFixed(3)}`);
    if (v.codecs.length > 0) attrs.push(`CODECS="${v.codecs.join(',')}"`);
    attrs.push(`STABLE-VARIANT-ID="${v.name}"`, `NAME="${v.name}"`);
    lines.push(`#EXT-X-STREAM-INF:${attrs.join(',')}`, v.uri);
  }
  return `${lines.join('\n')}\n`;
}

/** A playlist with variants is multivariant; a media playlist has segments instead (RFC 8216 4.1: never both). */
export function isMultivariant(m3u8: string): boolean {
  return /^#EXT-X-STREAM-INF:/m.test(m3u8);
}

export function parseMultivariantPlaylist(m3u8: string): Variant[] {
  const lines = m3u8.split(/\r?\n/).map((l) => l.trim());
  if (lines[0] !== '#EXTM3U') throw new Error('not an HLS playlist: the first line is not #EXTM3U');
  const variants: Variant[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!line.startsWith('#EXT-X-STREAM-INF:')) continue;
    const attrs = parseAttributes(line.slice('#EXT-X-STREAM-INF:'.length));
    let uri: string | undefined;
    for (i++; i < lines.length; i++) {
      const next = lines[i]!;
      if (next === '' || next.startsWith('#')) continue;
      uri = next;
      break;
    }
    if (uri === undefined) throw new Error('an EXT-X-STREAM-INF has no URI after it');
    const bandwidth = Number(attrs.get('BANDWIDTH'));
    if (!Number.isFinite(bandwidth) || bandwidth <= 0) throw new Error(`variant ${uri} has no BANDWIDTH`);
    const resolution = attrs.get('RESOLUTION')?.match(/^(\d+)x(\d+)$/);
    const average = attrs.get('AVERAGE-BANDWIDTH');
    const frameRate = attrs.get('FRAME-RATE');
    const codecs = attrs.get('CODECS');
    variants.push({
      name: attrs.get('STABLE-VARIANT-ID') ?? attrs.get('NAME') ?? uri.replace(/\.m3u8$/, ''),
      uri,
      bandwidth,
      ...(average !== undefined ? { averageBandwidth: Number(average) } : {}),
      ...(resolution ? { resolution: { width: Number(resolution[1]), height: Number(resolution[2]) } } : {}),
      ...(frameRate !== undefined ? { frameRate: Number(frameRate) } : {}),
      codecs: codecs ? codecs.split(',').map((c) => c.trim()) : [],
    });
  }
  return variants;
}

/** `A=1,B="x,y",C=z` → {A: "1", B: "x,y", C: "z"} (RFC 8216 4.2, quotes removed). */
function parseAttributes(list: string): Map<string, string> {
  const attrs = new Map<string, string>();
  for (const match of list.matchAll(/([A-Z0-9-]+)=("[^"]*"|[^,]*)/g)) {
    const value = match[2]!;
    attrs.set(match[1]!, value.startsWith('"') ? value.slice(1, -1) : value);
  }
  return attrs;
}
