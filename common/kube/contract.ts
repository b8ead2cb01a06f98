// The contract between the controller and the parts that read what it writes
// (the ingest's key source and stream claims, the gateway's view). One place
// for names, labels and formats, so the three cannot drift apart.
//
// Stream key Secret (written by the controller, read by the controller and
// by users, never by the ingest):
//   name       <livestream>-stream-key, in the LiveStream's namespace
//   labels     tteok.dev/stream-key: "true", tteok.dev/livestream: <livestream>
//   data       streamKey: the key (base64, as all Secret data)
//   annotation tteok.dev/key-rotation: the spec.keyRotation the key was made for
//   owner      the LiveStream (controller=true, its uid): the controller
//              updates and deletes only a Secret that names the LiveStream's
//              uid here, never one that merely has the name or the labels
//
// LiveStream status.streamKeySha256 (written by the controller, read by the
// ingest): the lowercase hex SHA-256 of the key in that Secret. The ingest
// verifies a presented key by hashing it and looking the hash up, so it needs
// no access to Secrets. The key is 192 random bits, so its hash reveals
// nothing usable.
//
// Stream claim Lease (written by the ingest pod that accepted the publish,
// read by the controller and the other ingest pods):
//   name       claim.<namespace>.<livestream>, in the ingest's namespace
//   labels     tteok.dev/claim: "true", tteok.dev/livestream-namespace, tteok.dev/livestream
//   spec       holderIdentity = pod name, acquireTime = when the stream went live,
//              renewTime renewed while live, leaseDurationSeconds
//   annotation tteok.dev/ll-origin: http://<pod IP>:<HTTP port>, where the
//              holder serves the stream's LL-HLS playlists and parts
//              (common/low-latency.ts); written with the claim when the pod
//              knows its IP (TTEOK_POD_IP), read by the gateway (LL origin)
import { createHash } from 'node:crypto';
import { API_GROUP, API_VERSION, type StreamRef } from '../livestream.ts';

export const LABEL_STREAM_KEY = 'tteok.dev/stream-key';
export const LABEL_LIVESTREAM = 'tteok.dev/livestream';
export const LABEL_CLAIM = 'tteok.dev/claim';
export const LABEL_LIVESTREAM_NAMESPACE = 'tteok.dev/livestream-namespace';
export const ANNOTATION_KEY_ROTATION = 'tteok.dev/key-rotation';
export const ANNOTATION_LL_ORIGIN = 'tteok.dev/ll-origin';
export const FINALIZER = 'tteok.dev/cleanup';
export const SECRET_KEY_FIELD = 'streamKey';

export const STREAM_KEY_SELECTOR = `${LABEL_STREAM_KEY}=true`;
export const CLAIM_SELECTOR = `${LABEL_CLAIM}=true`;

export const LIVESTREAM_PLURAL = 'livestreams';

export function keySecretName(livestream: string): string {
  return `${livestream}-stream-key`;
}

/** What every claim Lease's name starts with; the chart's admission policy keeps the ingest to these. */
export const CLAIM_LEASE_PREFIX = 'claim.';

/** Namespaces are DNS labels (no dots), so `claim.<ns>.<name>` is unambiguous. */
export function claimLeaseName(ref: StreamRef): string {
  return `${CLAIM_LEASE_PREFIX}${ref.namespace}.${ref.name}`;
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

/** The form status.streamKeySha256 has: 64 lowercase hex digits. */
export const STREAM_KEY_SHA256_PATTERN = /^[0-9a-f]{64}$/;

/** What the controller publishes for a key, and what the ingest compares a presented key with. */
export function streamKeySha256(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** Whether an object's owner references name this owner uid (the only test of ownership: names and labels can be copied, a uid cannot be reused). */
export function ownedBy(obj: { metadata?: { ownerReferences?: Array<{ uid: string }> } } | undefined, ownerUid: string | undefined): boolean {
  if (!ownerUid) return false;
  return (obj?.metadata?.ownerReferences ?? []).some((o) => o.uid === ownerUid);
}

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
  /** SHA-256 (hex) of the key in streamKeySecret; absent until the key exists, and while the Secret is not the LiveStream's own. */
  streamKeySha256?: string;
  ingestUrl?: string;
  playbackUrl?: string;
  /** The stream's poster JPEG beside its playlist (under _private/ for a private stream). */
  thumbnailUrl?: string;
  /** The transcoded renditions in force: spec.renditions, else the operator's default. */
  renditions?: string[];
  liveSince?: string;
  ingestPod?: string;
}
