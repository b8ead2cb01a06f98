// The LiveStream resource (tteok.dev/v1alpha1) as the ingest, the gateway and
// the controller all see it. The CRD in manifests/ is the source of truth for
// validation inside Kubernetes; this module gives the same defaults and checks
// to the parts that read LiveStreams from elsewhere (the local key file).

import type { PlaybackAccess } from './playback-token.ts';
import { renditionProblems } from './renditions.ts';

export const API_GROUP = 'tteok.dev';
export const API_VERSION = 'v1alpha1';
export const KIND = 'LiveStream';
export const API_VERSION_FULL = `${API_GROUP}/${API_VERSION}`;

export interface LiveStreamSpec {
  title?: string;
  enabled?: boolean;
  hls?: { segmentSeconds?: number; playlistLength?: number };
  retention?: { keepAfterEnd?: boolean };
  keyRotation?: number;
  playback?: { access?: PlaybackAccess };
  /** Presets the transcoder encodes from the source (common/renditions.ts); absent: the ingest's TTEOK_DEFAULT_RENDITIONS; `[]`: none. */
  renditions?: string[];
}

export interface LiveStreamObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; uid?: string; generation?: number; [k: string]: unknown };
  spec?: LiveStreamSpec;
  status?: Record<string, unknown>;
}

/** A stream's identity: what paths, object keys, URLs, logs and metrics use. Never the key. */
export interface StreamRef {
  namespace: string;
  name: string;
}

/** The settings the ingest applies to one stream, with defaults filled in. */
export interface StreamSettings {
  title: string;
  enabled: boolean;
  segmentSeconds: number;
  playlistLength: number;
  keepAfterEnd: boolean;
  /** `private`: media only with a playback token (common/playback-token.ts). */
  access: PlaybackAccess;
  /** The presets the transcoder encodes for this stream (common/renditions.ts); `[]`: no transcoded renditions. */
  renditions: string[];
}

export const DEFAULT_SETTINGS: StreamSettings = {
  title: '',
  enabled: true,
  segmentSeconds: 1,
  playlistLength: 6,
  keepAfterEnd: false,
  access: 'public',
  renditions: [],
};

export const SEGMENT_SECONDS_MIN = 1;
export const SEGMENT_SECONDS_MAX = 10;
export const PLAYLIST_LENGTH_MIN = 3;
export const PLAYLIST_LENGTH_MAX = 60;

// Kubernetes object names: a DNS-1123 label for namespaces, a DNS-1123
// subdomain for LiveStream names (we also cap it at 63 so it fits in labels).
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$/;

export function isValidNamespace(value: string): boolean {
  return DNS_LABEL.test(value);
}

export function isValidName(value: string): boolean {
  return DNS_SUBDOMAIN.test(value);
}

export function streamId(ref: StreamRef): string {
  return `${ref.namespace}/${ref.name}`;
}

/** What the operator chose for streams that do not say (TTEOK_DEFAULT_RENDITIONS). */
export interface SpecDefaults {
  /** Renditions of a LiveStream without `spec.renditions` (an explicit `[]` keeps none). */
  renditions?: readonly string[];
}

/**
 * Checks a LiveStream read from outside Kubernetes and fills in defaults.
 * Returns the problems found, each naming the field, so a bad file is refused
 * with a message that says what to fix.
 */
export function settingsFromSpec(spec: LiveStreamSpec | undefined, defaults: SpecDefaults = {}): { settings: StreamSettings; problems: string[] } {
  const problems: string[] = [];
  const s = spec ?? {};
  const settings: StreamSettings = { ...DEFAULT_SETTINGS, renditions: [...(defaults.renditions ?? DEFAULT_SETTINGS.renditions)] };
  if (s.title !== undefined) {
    if (typeof s.title !== 'string') problems.push('spec.title must be a string');
    else settings.title = s.title;
  }
  if (s.enabled !== undefined) {
    if (typeof s.enabled !== 'boolean') problems.push('spec.enabled must be true or false');
    else settings.enabled = s.enabled;
  }
  const seg = s.hls?.segmentSeconds;
  if (seg !== undefined) {
    if (!Number.isInteger(seg) || seg < SEGMENT_SECONDS_MIN || seg > SEGMENT_SECONDS_MAX) {
      problems.push(`spec.hls.segmentSeconds must be an integer from ${SEGMENT_SECONDS_MIN} to ${SEGMENT_SECONDS_MAX}`);
    } else settings.segmentSeconds = seg;
  }
  const len = s.hls?.playlistLength;
  if (len !== undefined) {
    if (!Number.isInteger(len) || len < PLAYLIST_LENGTH_MIN || len > PLAYLIST_LENGTH_MAX) {
      problems.push(`spec.hls.playlistLength must be an integer from ${PLAYLIST_LENGTH_MIN} to ${PLAYLIST_LENGTH_MAX}`);
    } else settings.playlistLength = len;
  }
  const keep = s.retention?.keepAfterEnd;
  if (keep !== undefined) {
    if (typeof keep !== 'boolean') problems.push('spec.retention.keepAfterEnd must be true or false');
    else settings.keepAfterEnd = keep;
  }
  const access = s.playback?.access;
  if (access !== undefined) {
    if (access !== 'public' && access !== 'private') problems.push('spec.playback.access must be "public" or "private"');
    else settings.access = access;
  }
  if (s.renditions !== undefined) {
    const bad = renditionProblems(s.renditions);
    if (bad.length > 0) problems.push(...bad);
    else settings.renditions = [...s.renditions];
  }
  return { settings, problems };
}
