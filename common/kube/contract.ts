// The contract between the controller and the parts that read what it writes
// (the ingest's key source and stream claims, the gateway's view). One place
// for names, labels and formats, so the three cannot drift apart.
//
// Stream key Secret (written by the controller, read by the ingest):
//   name       <livestream>-stream-key, in the LiveStream's namespace
//   labels     tteok.dev/stream-key: "true", tteok.dev/livestream: <livestream>
//   data       streamKey: the key (base64, as all Secret data)
//   annotation tteok.dev/settings: the StreamSettings as JSON, kept in sync with the spec
//   annotation tteok.dev/key-rotation: the spec.keyRotation the key was made for
//   owner      the LiveStream (controller=true)
//
// Stream claim Lease (written by the ingest pod that accepted the publish,
// read by the controller and the other ingest pods):
//   name       claim.<namespace>.<livestream>, in the ingest's namespace
//   labels     tteok.dev/claim: "true", tteok.dev/livestream-namespace, tteok.dev/livestream
//   spec       holderIdentity = pod name, acquireTime = when the stream went live,
//              renewTime renewed while live, leaseDurationSeconds
import { API_GROUP, API_VERSION, DEFAULT_SETTINGS, settingsFromSpec, type StreamRef, type StreamSettings } from '../livestream.ts';

export const LABEL_STREAM_KEY = 'tteok.dev/stream-key';
export const LABEL_LIVESTREAM = 'tteok.dev/livestream';
export const LABEL_CLAIM = 'tteok.dev/claim';
export const LABEL_LIVESTREAM_NAMESPACE = 'tteok.dev/livestream-namespace';
export const ANNOTATION_SETTINGS = 'tteok.dev/settings';
export const ANNOTATION_KEY_ROTATION = 'tteok.dev/key-rotation';
export const FINALIZER = 'tteok.dev/cleanup';
export const SECRET_KEY_FIELD = 'streamKey';

export const STREAM_KEY_SELECTOR = `${LABEL_STREAM_KEY}=true`;
export const CLAIM_SELECTOR = `${LABEL_CLAIM}=true`;

export const LIVESTREAM_PLURAL = 'livestreams';

export function keySecretName(livestream: string): string {
  return `${livestream}-stream-key`;
}

/** Namespaces are DNS labels (no dots), so `claim.<ns>.<name>` is unambiguous. */
export function claimLeaseName(ref: StreamRef): string {
  return `claim.${ref.namespace}.${ref.name}`;
}

export function parseClaimLeaseName(leaseName: string): StreamRef | undefined {
  const m = /^claim\.([a-z0-9-]+)\.(.+)$/.exec(leaseName);
  return m ? { namespace: m[1]!, name: m[2]! } : undefined;
}

function nsPath(namespace: string | undefined): string {
  return namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
}

export const liveStreamsPath = (namespace?: string) => `/apis/${API_GROUP}/${API_VERSION}${nsPath(namespace)}/${LIVESTREAM_PLURAL}`;
export const secretsPath = (namespace?: string) => `/api/v1${nsPath(namespace)}/secrets`;
export const leasesPath = (namespace?: string) => `/apis/coordination.k8s.io/v1${nsPath(namespace)}/leases`;
export const statefulSetsPath = (namespace?: string) => `/apis/apps/v1${nsPath(namespace)}/statefulsets`;

/** The settings annotation: fixed key order, so equal settings give equal text. */
export function encodeSettings(s: StreamSettings): string {
  return JSON.stringify({
    title: s.title,
    enabled: s.enabled,
    segmentSeconds: s.segmentSeconds,
    playlistLength: s.playlistLength,
    keepAfterEnd: s.keepAfterEnd,
  });
}

/** Parses and checks the settings annotation; undefined if it is missing or malformed. */
export function decodeSettings(text: string | undefined): StreamSettings | undefined {
  if (!text) return undefined;
  let raw: Partial<StreamSettings>;
  try {
    raw = JSON.parse(text) as Partial<StreamSettings>;
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null) return undefined;
  const { settings, problems } = settingsFromSpec({
    ...(raw.title !== undefined ? { title: raw.title } : {}),
    ...(raw.enabled !== undefined ? { enabled: raw.enabled } : {}),
    hls: {
      ...(raw.segmentSeconds !== undefined ? { segmentSeconds: raw.segmentSeconds } : {}),
      ...(raw.playlistLength !== undefined ? { playlistLength: raw.playlistLength } : {}),
    },
    retention: raw.keepAfterEnd !== undefined ? { keepAfterEnd: raw.keepAfterEnd } : {},
  });
  return problems.length === 0 ? settings : undefined;
}

export { DEFAULT_SETTINGS };

/** What the controller writes to a LiveStream's status. */
export interface LiveStreamCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime: string;
}

export interface LiveStreamStatus {
  phase?: 'Pending' | 'Ready' | 'Live' | 'Disabled' | 'Error';
  observedGeneration?: number;
  conditions?: LiveStreamCondition[];
  streamKeySecret?: string;
  ingestUrl?: string;
  playbackUrl?: string;
  liveSince?: string;
  ingestPod?: string;
}
