// Reconciling one LiveStream: level-based and idempotent. It reads the world
// (the LiveStream, its key Secret, its claim Lease, all from informer caches)
// and writes only what differs:
//   - the finalizer, so deletion waits for cleanup;
//   - the key Secret (created with a fresh key; a new key when
//     spec.keyRotation changes), owned by the LiveStream;
//   - the status (phase, conditions, URLs, the key's SHA-256 for the ingest,
//     live state from the claim), through the status subresource as a merge
//     patch;
//   - Events for what a user should see.
// Only a Secret whose owner references carry the LiveStream's uid is ever
// updated or deleted: a Secret of the same name that is somebody else's (or
// only looks like a key Secret) is a conflict the user must resolve, shown as
// phase Error, and is left exactly as it is.
// On delete: the ingest stops accepting the key as soon as the LiveStream has
// a deletionTimestamp (ending a live publish); the key Secret goes if it is
// the LiveStream's own, the controller waits for the claim to be released,
// deletes the stored media unless retention keeps it, then removes the
// finalizer.
import type { CustomObjectsApi, KubeConfig, V1Secret } from '@kubernetes/client-node';
import { isWellFormedKey, newStreamKey } from '../common/keys/key-source.ts';
import { API_GROUP, API_VERSION, API_VERSION_FULL, KIND, settingsFromSpec, streamId, type LiveStreamObject, type StreamRef } from '../common/livestream.ts';
import type { Logger } from '../common/log.ts';
import { joinKey, playlistKey, streamPrefix } from '../common/object-layout.ts';
import { THUMBNAIL_FILE } from '../common/renditions.ts';
import { accessRoot } from '../common/playback-token.ts';
import { JSON_PATCH, KubeHttpError, MERGE_PATCH, errorMessage, rawJson, statusCode } from '../common/kube/client.ts';
import {
  ANNOTATION_KEY_ROTATION,
  FINALIZER,
  LABEL_LIVESTREAM,
  LABEL_STREAM_KEY,
  LIVESTREAM_PLURAL,
  SECRET_KEY_FIELD,
  claimLeaseName,
  keySecretName,
  ownedBy,
  secretsPath,
  streamKeySha256,
  type LiveStreamCondition,
  type LiveStreamStatus,
} from '../common/kube/contract.ts';
import { leaseExpiresAt, leaseHeld, type LeaseObject } from '../common/kube/lease.ts';
import type { Informer } from '../common/kube/informer.ts';
import type { ControllerConfig } from './config.ts';
import type { EventRecorder } from './events.ts';
import type { FreshCache } from './fresh-cache.ts';
import { detectWebhookEvents, type StatusWithWebhooks } from './webhook-events.ts';
import type { WebhookDispatcher } from './webhooks.ts';

/** How long a LiveStream's deletion waits for the webhook deliveries it still owes. */
const DELETION_WEBHOOK_WAIT_MS = 30_000;

export type LiveStream = LiveStreamObject & {
  metadata: LiveStreamObject['metadata'] & {
    finalizers?: string[];
    deletionTimestamp?: string;
    resourceVersion?: string;
  };
};

/** Where stored media is deleted from (S3Store in production). */
export interface MediaStore {
  deletePrefix(prefix: string): Promise<void>;
}

/** A problem the user must fix (shown as phase Error); retried on the next change or resync, not with backoff. */
export class UserError extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export interface ReconcileResult {
  /** Reconcile again after this long (a claim that will expire, a deletion waiting for a publish to end). */
  requeueAfterMs?: number;
  phase?: LiveStreamStatus['phase'];
}

export interface ReconcilerDeps {
  kc: KubeConfig;
  custom: CustomObjectsApi;
  config: ControllerConfig;
  liveStreams: FreshCache<LiveStream>;
  secrets: FreshCache<V1Secret>;
  claims: Informer<LeaseObject>;
  store: MediaStore | undefined;
  events: EventRecorder;
  log: Logger;
  /** Records webhook events in the status and delivers them (absent: no webhooks, as in some tests). */
  webhooks?: WebhookDispatcher;
}

export class LiveStreamReconciler {
  constructor(private readonly d: ReconcilerDeps) {}

  async reconcile(ref: StreamRef, failures: { count: number; lastError?: string }): Promise<ReconcileResult> {
    const ls = this.d.liveStreams.get(ref.namespace, ref.name);
    if (!ls) {
      this.d.webhooks?.forgetStream(ref);
      return {};
    }
    if (ls.metadata.deletionTimestamp) return this.finalize(ls, ref);
    let current = ls;
    if (!(ls.metadata.finalizers ?? []).includes(FINALIZER)) current = await this.addFinalizer(ls);

    const { settings } = settingsFromSpec(current.spec, { renditions: this.d.config.defaultRenditions });
    let secret: V1Secret | undefined;
    let userError: UserError | undefined;
    try {
      secret = await this.ensureSecret(current, ref);
    } catch (err) {
      if (!(err instanceof UserError)) throw err;
      userError = err;
    }
    if (!userError && failures.count >= 5 && failures.lastError) {
      // Still failing after retries: say so in the status while retrying goes on.
      userError = new UserError('ReconcileFailing', failures.lastError);
    }

    const claim = this.d.claims.get(this.d.config.ingest.namespace, claimLeaseName(ref));
    const live = leaseHeld(claim);
    const status: StatusWithWebhooks = this.desiredStatus(current, ref, {
      secret,
      live,
      claim,
      enabled: settings.enabled,
      renditions: settings.renditions,
      userError,
    });
    const webhooks = this.d.webhooks?.plan(
      current,
      ref,
      detectWebhookEvents({
        old: (current.status ?? {}) as LiveStreamStatus,
        next: status,
        keepAfterEnd: settings.keepAfterEnd,
        claimReleased: !claim,
        keyRotation: current.spec?.keyRotation ?? 0,
        now: new Date(),
      }),
    );
    if (webhooks?.pending.length) status.webhookEvents = webhooks.pending;
    const written = await this.writeStatus(current, ref, status);
    webhooks?.commit();
    this.d.webhooks?.sync(written, ref);
    const result: ReconcileResult = { phase: status.phase };
    if (live) {
      const expires = leaseExpiresAt(claim)!;
      result.requeueAfterMs = Math.max(100, expires - Date.now() + 100);
    }
    return result;
  }

  private async addFinalizer(ls: LiveStream): Promise<LiveStream> {
    const finalizers = ls.metadata.finalizers;
    const ops = finalizers
      ? [
          { op: 'test', path: '/metadata/finalizers', value: finalizers },
          { op: 'add', path: '/metadata/finalizers/-', value: FINALIZER },
        ]
      : [
          { op: 'test', path: '/metadata/resourceVersion', value: ls.metadata.resourceVersion },
          { op: 'add', path: '/metadata/finalizers', value: [FINALIZER] },
        ];
    const updated = (await this.d.custom.patchNamespacedCustomObject(
      { group: API_GROUP, version: API_VERSION, namespace: ls.metadata.namespace!, plural: LIVESTREAM_PLURAL, name: ls.metadata.name, body: ops },
      JSON_PATCH,
    )) as LiveStream;
    this.d.liveStreams.wrote(updated);
    return updated;
  }

  private secretBody(ls: LiveStream, ref: StreamRef, key: string, base?: V1Secret): V1Secret {
    return {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: keySecretName(ref.name),
        namespace: ref.namespace,
        ...(base?.metadata?.resourceVersion ? { resourceVersion: base.metadata.resourceVersion } : {}),
        labels: { ...(base?.metadata?.labels ?? {}), [LABEL_STREAM_KEY]: 'true', [LABEL_LIVESTREAM]: ref.name, 'app.kubernetes.io/managed-by': 'tteok' },
        annotations: { ...(base?.metadata?.annotations ?? {}), [ANNOTATION_KEY_ROTATION]: String(ls.spec?.keyRotation ?? 0) },
        ownerReferences: [{ apiVersion: API_VERSION_FULL, kind: KIND, name: ref.name, uid: ls.metadata.uid!, controller: true, blockOwnerDeletion: true }],
      },
      type: 'Opaque',
      data: { [SECRET_KEY_FIELD]: Buffer.from(key).toString('base64') },
    };
  }

  private async ensureSecret(ls: LiveStream, ref: StreamRef): Promise<V1Secret> {
    const name = keySecretName(ref.name);
    const path = `${secretsPath(ref.namespace)}/${name}`;
    let secret = this.d.secrets.get(ref.namespace, name);
    const target = { namespace: ref.namespace, name: ref.name, uid: ls.metadata.uid };
    if (!secret) {
      try {
        secret = await rawJson<V1Secret>(this.d.kc, secretsPath(ref.namespace), { method: 'POST', body: this.secretBody(ls, ref, newStreamKey()) });
        this.d.secrets.wrote(secret);
        this.d.log.info({ stream: streamId(ref), secret: name }, 'stream key allocated');
        this.d.events.normal(target, 'KeyAllocated', `Stream key created in Secret ${name}`);
        return secret;
      } catch (err) {
        if (statusCode(err) !== 409) throw err;
        // Already there: our cache is behind, or it is somebody else's Secret.
        secret = await rawJson<V1Secret>(this.d.kc, path);
        if (ownedBy(secret, ls.metadata.uid)) this.d.secrets.wrote(secret);
      }
    }
    if (!ownedBy(secret, ls.metadata.uid)) {
      // Names and labels can be copied; only our owner reference says it is ours. Never touch it.
      throw new UserError('SecretConflict', `Secret ${name} already exists and is not this LiveStream's (no owner reference to it); delete or rename it`);
    }
    const rotation = String(ls.spec?.keyRotation ?? 0);
    const needsKey = secret.metadata?.annotations?.[ANNOTATION_KEY_ROTATION] !== rotation || !isWellFormedKey(keyIn(secret));
    const labels = secret.metadata?.labels ?? {};
    if (!needsKey && labels[LABEL_STREAM_KEY] === 'true' && labels[LABEL_LIVESTREAM] === ref.name) return secret;
    const key = needsKey ? newStreamKey() : keyIn(secret);
    try {
      // With the resourceVersion we checked ownership on: if the Secret changed since, this fails and we look again.
      const updated = await rawJson<V1Secret>(this.d.kc, path, { method: 'PUT', body: this.secretBody(ls, ref, key, secret) });
      this.d.secrets.wrote(updated);
      if (needsKey) {
        const why = isWellFormedKey(keyIn(secret)) ? `spec.keyRotation is now ${rotation}` : 'the Secret held no valid key';
        this.d.log.info({ stream: streamId(ref), secret: name }, `stream key rotated: ${why}`);
        this.d.events.normal(target, 'KeyRotated', `New stream key in Secret ${name} (${why}); the old key no longer works`);
      }
      return updated;
    } catch (err) {
      if (statusCode(err) === 404) this.d.secrets.deleted(ref.namespace, name); // deleted meanwhile: the retry creates it
      throw err;
    }
  }

  private desiredStatus(
    ls: LiveStream,
    ref: StreamRef,
    s: {
      secret: V1Secret | undefined;
      live: boolean;
      claim: LeaseObject | undefined;
      enabled: boolean;
      renditions: string[];
      userError: UserError | undefined;
    },
  ): LiveStreamStatus {
    const old = (ls.status ?? {}) as LiveStreamStatus;
    const generation = ls.metadata.generation;
    const now = statusTime(new Date());
    const cond = (type: string, status: 'True' | 'False', reason: string, message: string) =>
      statusCondition(old, generation, now, { type, status, reason, message });
    const { config } = this.d;
    const secretName = s.secret?.metadata?.name;
    const key = s.secret ? keyIn(s.secret) : '';
    let ready: LiveStreamCondition;
    if (s.userError) ready = cond('Ready', 'False', s.userError.reason, s.userError.message);
    else if (!secretName) ready = cond('Ready', 'False', 'KeyPending', 'The stream key is being allocated');
    else if (!s.enabled) ready = cond('Ready', 'False', 'Disabled', 'spec.enabled is false: publishes are refused');
    else ready = cond('Ready', 'True', 'KeyAllocated', `The stream key is in Secret ${secretName}; publishers may connect`);
    const holder = s.claim?.spec?.holderIdentity ?? undefined;
    const since = s.claim?.spec?.acquireTime ? statusTime(new Date(String(s.claim.spec.acquireTime))) : undefined;
    const liveCond = s.live
      ? cond('Live', 'True', 'Publishing', `Live on ingest pod ${holder}`)
      : cond('Live', 'False', 'NoPublisher', 'No publisher is connected');
    const phase: LiveStreamStatus['phase'] = s.userError ? 'Error' : !s.enabled ? 'Disabled' : s.live ? 'Live' : secretName ? 'Ready' : 'Pending';
    // A private stream's media, its thumbnail too, is under _private/: the URL a playback token goes in front of (common/playback-token.ts).
    const mediaRoot = joinKey(config.s3.prefix, ls.spec?.playback?.access === 'private' ? accessRoot('private') : '');
    const status: LiveStreamStatus = {
      phase,
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
      conditions: [ready, liveCond],
      ...(secretName ? { streamKeySecret: secretName } : {}),
      ...(secretName && isWellFormedKey(key) ? { streamKeySha256: streamKeySha256(key) } : {}),
      ...(config.ingest.publicUrl ? { ingestUrl: config.ingest.publicUrl } : {}),
      ...(config.playbackBaseUrl
        ? {
            playbackUrl: `${config.playbackBaseUrl}/${playlistKey(ref, mediaRoot)}`,
            thumbnailUrl: `${config.playbackBaseUrl}/${joinKey(streamPrefix(ref, mediaRoot), THUMBNAIL_FILE)}`,
          }
        : {}),
      // The transcoded renditions in force: spec.renditions, else TTEOK_DEFAULT_RENDITIONS, as the ingest applies them.
      renditions: s.renditions,
      ...(s.live && since ? { liveSince: since } : {}),
      ...(s.live && holder ? { ingestPod: holder } : {}),
    };
    return status;
  }

  /** Writes the status if it differs; returns the LiveStream as it now is. */
  private async writeStatus(ls: LiveStream, ref: StreamRef, status: StatusWithWebhooks): Promise<LiveStream> {
    const old = (ls.status ?? {}) as StatusWithWebhooks;
    if (sameStatus(old, status)) return ls;
    // A merge patch replaces the lists and sets fields; fields we no longer report are nulled.
    const patch: Record<string, unknown> = { ...status };
    for (const field of [
      'streamKeySecret',
      'streamKeySha256',
      'ingestUrl',
      'playbackUrl',
      'thumbnailUrl',
      'liveSince',
      'ingestPod',
      'webhookEvents',
    ] as const) {
      if (status[field] === undefined && old[field] !== undefined) patch[field] = null;
    }
    // The pending webhook events are a queue: written only over the version they
    // were read from (409 otherwise, and the reconcile runs again), so a
    // replica acting on a stale cache cannot drop or duplicate an event.
    // A write that leaves the queue alone does not send it, so it cannot put back an older copy.
    const queueChanged = queueOf(old) !== queueOf(status);
    if (!queueChanged) delete patch['webhookEvents'];
    const body = queueChanged ? { metadata: { resourceVersion: ls.metadata.resourceVersion }, status: patch } : { status: patch };
    const updated = (await this.d.custom.patchNamespacedCustomObjectStatus(
      { group: API_GROUP, version: API_VERSION, namespace: ref.namespace, plural: LIVESTREAM_PLURAL, name: ref.name, body },
      MERGE_PATCH,
    )) as LiveStream;
    this.d.liveStreams.wrote(updated);
    const target = { namespace: ref.namespace, name: ref.name, uid: ls.metadata.uid };
    const wasLive = old.conditions?.find((c) => c.type === 'Live')?.status === 'True';
    const isLive = status.conditions?.find((c) => c.type === 'Live')?.status === 'True';
    if (!wasLive && isLive) this.d.events.normal(target, 'Live', `The stream went live on ingest pod ${status.ingestPod ?? 'unknown'}`);
    if (wasLive && !isLive) this.d.events.normal(target, 'Ended', 'The stream ended');
    if (status.phase === 'Error' && old.phase !== 'Error') {
      const ready = status.conditions?.find((c) => c.type === 'Ready');
      this.d.events.warning(target, ready?.reason ?? 'Error', ready?.message ?? 'reconcile failed');
    }
    this.d.log.debug({ stream: streamId(ref), phase: status.phase }, 'status updated');
    return updated;
  }

  private async finalize(ls: LiveStream, ref: StreamRef): Promise<ReconcileResult> {
    const finalizers = ls.metadata.finalizers ?? [];
    if (!finalizers.includes(FINALIZER)) return {};
    const target = { namespace: ref.namespace, name: ref.name, uid: ls.metadata.uid };
    const name = keySecretName(ref.name);
    // 1. Revoke the key: delete the key Secret, if it is this LiveStream's.
    // (The ingest already refuses the key: it ignores a LiveStream being deleted.)
    // Asked of the API server, not the cache: the cache may lack a Secret created
    // moments ago, and holds none that is not labelled as a key Secret.
    let secret: V1Secret | undefined;
    try {
      secret = await rawJson<V1Secret>(this.d.kc, `${secretsPath(ref.namespace)}/${name}`);
    } catch (err) {
      if (statusCode(err) !== 404) throw err;
    }
    if (secret && ownedBy(secret, ls.metadata.uid)) {
      try {
        // Preconditions: exactly the object whose ownership was just checked, not a replacement of the same name.
        await rawJson(this.d.kc, `${secretsPath(ref.namespace)}/${name}`, {
          method: 'DELETE',
          body: { apiVersion: 'v1', kind: 'DeleteOptions', preconditions: { uid: secret.metadata!.uid!, resourceVersion: secret.metadata!.resourceVersion! } },
        });
        this.d.log.info({ stream: streamId(ref) }, 'stream key revoked (LiveStream deleted)');
        this.d.events.normal(target, 'KeyRevoked', `Deleted Secret ${name}: the stream key no longer works`);
      } catch (err) {
        if (statusCode(err) !== 404) throw err; // 409: it changed since it was read; look again
      }
      this.d.secrets.deleted(ref.namespace, name);
    } else if (!secret) {
      this.d.secrets.deleted(ref.namespace, name);
    } else {
      this.d.log.info({ stream: streamId(ref), secret: name }, "Secret of the key Secret's name left in place: it is not this LiveStream's");
    }
    // 2. Wait for a live publish to end (its claim released or expired).
    const claim = this.d.claims.get(this.d.config.ingest.namespace, claimLeaseName(ref));
    if (leaseHeld(claim)) {
      const wait = Math.min(1000, Math.max(100, leaseExpiresAt(claim)! - Date.now() + 100));
      this.d.log.info({ stream: streamId(ref), ingestPod: claim?.spec?.holderIdentity }, 'waiting for the live publish to end before deleting media');
      return { requeueAfterMs: wait };
    }
    // 2b. A run that was live ended with the deletion: its webhooks hear of it before the LiveStream goes.
    if (this.d.webhooks) {
      const waiting = await this.endOfRunWebhooks(ls, ref, claim, target);
      if (waiting) return waiting;
    }
    // 3. Delete stored media unless retention keeps it.
    const { settings } = settingsFromSpec(ls.spec);
    if (!settings.keepAfterEnd) {
      if (this.d.store) {
        // Public and private roots: the stream's access may have changed over its life.
        for (const root of [accessRoot('public'), accessRoot('private')]) {
          await this.d.store.deletePrefix(joinKey(this.d.config.s3.prefix, root, ref.namespace, ref.name));
        }
        this.d.log.info({ stream: streamId(ref) }, 'stored media deleted');
        this.d.events.normal(target, 'MediaDeleted', "Deleted the stream's stored media");
      } else {
        this.d.log.warn({ stream: streamId(ref) }, 'no object store configured (TTEOK_S3_BUCKET); stored media was not deleted');
      }
    }
    // 4. Let the deletion finish.
    try {
      await this.d.custom.patchNamespacedCustomObject(
        {
          group: API_GROUP,
          version: API_VERSION,
          namespace: ref.namespace,
          plural: LIVESTREAM_PLURAL,
          name: ref.name,
          body: [
            { op: 'test', path: '/metadata/finalizers', value: finalizers },
            { op: 'replace', path: '/metadata/finalizers', value: finalizers.filter((f) => f !== FINALIZER) },
          ],
        },
        JSON_PATCH,
      );
    } catch (err) {
      if (statusCode(err) !== 404) throw err;
    }
    this.d.liveStreams.forget(ref.namespace, ref.name);
    this.d.webhooks?.forgetStream(ref);
    this.d.log.info({ stream: streamId(ref) }, 'LiveStream cleaned up');
    return {};
  }

  /**
   * Deletion of a LiveStream whose status still says live: its publish has
   * ended (the claim is gone), so the status says so and records the
   * webhook events of that end (stream.offline, stream.recording_ready), as
   * a reconcile would have. The deletion then waits for every delivery
   * still owed, for at most DELETION_WEBHOOK_WAIT_MS after it was asked
   * (the pending events live in the object being deleted).
   */
  private async endOfRunWebhooks(
    ls: LiveStream,
    ref: StreamRef,
    claim: LeaseObject | undefined,
    target: { namespace: string; name: string; uid: string | undefined },
  ): Promise<ReconcileResult | undefined> {
    const webhooks = this.d.webhooks!;
    const old = (ls.status ?? {}) as StatusWithWebhooks;
    const now = new Date();
    let next: StatusWithWebhooks = { ...old };
    let fresh: ReturnType<typeof detectWebhookEvents> = [];
    if (old.conditions?.some((c) => c.type === 'Live' && c.status === 'True')) {
      const ended = statusCondition(old, ls.metadata.generation, statusTime(now), {
        type: 'Live',
        status: 'False',
        reason: 'NoPublisher',
        message: 'No publisher is connected (the LiveStream is being deleted)',
      });
      next = { ...old, phase: 'Ready', conditions: old.conditions.map((c) => (c.type === 'Live' ? ended : c)) };
      delete next.liveSince;
      delete next.ingestPod;
      const { settings } = settingsFromSpec(ls.spec);
      fresh = detectWebhookEvents({ old, next, keepAfterEnd: settings.keepAfterEnd, claimReleased: !claim, keyRotation: ls.spec?.keyRotation ?? 0, now });
    }
    // Also writes the outcomes of deliveries made meanwhile (acknowledged events leave the queue).
    const plan = webhooks.plan(ls, ref, fresh, now);
    if (plan.pending.length > 0) next.webhookEvents = plan.pending;
    else delete next.webhookEvents;
    const current = await this.writeStatus(ls, ref, next);
    plan.commit();
    const owed = plan.pending;
    if (owed.length === 0) return undefined;
    const askedAt = Date.parse(ls.metadata.deletionTimestamp ?? '') || Date.now();
    if (Date.now() - askedAt < DELETION_WEBHOOK_WAIT_MS) {
      webhooks.sync(current, ref);
      return { requeueAfterMs: 500 };
    }
    this.d.log.warn({ stream: streamId(ref), events: owed.length }, 'LiveStream deleted with webhook deliveries still owed; they are dropped');
    this.d.events.warning(
      target,
      'WebhooksDropped',
      `${owed.length} webhook event(s) not delivered within ${DELETION_WEBHOOK_WAIT_MS / 1000} s of the deletion were dropped`,
    );
    return undefined;
  }
}

/** A time as the status writes it: RFC 3339 to the second, as Kubernetes does. */
function statusTime(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** A condition as the status reports it: its transition time stays while its status does. */
function statusCondition(
  old: LiveStreamStatus,
  generation: number | undefined,
  now: string,
  c: Pick<LiveStreamCondition, 'type' | 'status' | 'reason' | 'message'>,
): LiveStreamCondition {
  const prev = old.conditions?.find((p) => p.type === c.type);
  return {
    ...c,
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    lastTransitionTime: prev && prev.status === c.status ? prev.lastTransitionTime : now,
  };
}

/** The key a key Secret holds ('' when none). */
function keyIn(secret: V1Secret): string {
  return Buffer.from(secret.data?.[SECRET_KEY_FIELD] ?? '', 'base64').toString('utf8');
}

/** The webhook queue's identity: a recorded event never changes except for the webhooks still owed it. */
function queueOf(s: StatusWithWebhooks): string {
  return (s.webhookEvents ?? []).map((e) => `${e.id}:${[...(e.pendingTargets ?? [])].sort().join(',')}`).join(' ');
}

function sameStatus(a: StatusWithWebhooks, b: StatusWithWebhooks): boolean {
  const norm = (s: StatusWithWebhooks) =>
    JSON.stringify({
      phase: s.phase,
      observedGeneration: s.observedGeneration,
      conditions: (s.conditions ?? []).map((c) => [c.type, c.status, c.reason, c.message, c.observedGeneration, c.lastTransitionTime]),
      streamKeySecret: s.streamKeySecret,
      streamKeySha256: s.streamKeySha256,
      ingestUrl: s.ingestUrl,
      playbackUrl: s.playbackUrl,
      thumbnailUrl: s.thumbnailUrl,
      renditions: s.renditions,
      liveSince: s.liveSince,
      ingestPod: s.ingestPod,
      webhookEvents: queueOf(s),
    });
  return norm(a) === norm(b);
}

export { KubeHttpError, errorMessage };
