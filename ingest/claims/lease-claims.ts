// One publisher per stream across the whole ingest fleet. The pod that
// accepts a publish claims the stream with a coordination.k8s.io Lease named
// claim.<namespace>.<name> in its own namespace, holder = the pod, renewed
// while the stream is live. Another pod asked to accept the same stream finds
// the claim held and refuses; a pod that dies stops renewing, its claim
// expires after leaseDurationSeconds and the stream can go live elsewhere.
// The controller watches these Leases for the Live condition, liveSince and
// ingestPod. Writes carry the resourceVersion they read, so two pods racing
// for the same stream cannot both win.
//
// Takeover. A streamer whose connection died silently reconnects, and the
// load balancer may send it to another pod, while the old pod still holds
// the claim (the dead connection looks open for a while). So the holder
// reports silence in the claim itself: once its stream has had no media for
// the takeover threshold (or no publisher at all, in its reconnect grace) it
// writes the annotation tteok.dev/media-silent-since at once, not at the next
// renewal, and removes it when media flows again. A pod asked to accept the
// stream waits briefly for that mark, then takes the claim over with a write
// conditioned on the resourceVersion it read — so a holder whose media
// resumed, and which cleared the mark first, keeps its stream. While its
// claim is marked, the holder reads it a few times a second, so it learns of
// a takeover within a fraction of a second and hands its run over before
// the new holder's first playlist is written: it writes no final playlist, and
// the new holder continues the stored one. The renewal interval plays no part in
// how fast a takeover happens.
//
// The claim also says where this pod serves the stream's LL-HLS (annotation
// tteok.dev/ll-origin, http://<TTEOK_POD_IP>:<HTTP port>) for the gateway;
// a claim taken over names the new holder's, or none.
//
// stop() (at shutdown) ends at once what is under way: a publish waiting for
// another pod's silence mark, and any request to an API server that does not
// answer; nothing here waits on a timer stop() cannot cut short.
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { KubeConfig } from '@kubernetes/client-node';
import { ConfigError, type Env } from '../../common/env-config.ts';
import { CLAIM_ENV, POD_ENV } from '../../common/shared-env.ts';
import type { Logger } from '../../common/log.ts';
import { streamId, type StreamRef } from '../../common/livestream.ts';
import { KubeHttpError } from '../../common/kube/client.ts';
import { ANNOTATION_LL_ORIGIN, CLAIM_SELECTOR, LABEL_CLAIM, LABEL_LIVESTREAM, LABEL_LIVESTREAM_NAMESPACE, claimLeaseName } from '../../common/kube/contract.ts';
import { LeaseClient, leaseHeld, microTime, type LeaseObject } from '../../common/kube/lease.ts';
import { INGEST_ENV, INGEST_POD_ENV } from '../config.ts';
import type { StreamClaims } from '../stream-hub.ts';
import { setTimeout as sleep } from 'node:timers/promises';

export { CLAIM_SELECTOR };

/** On a held claim: since when (RFC 3339) the holder's stream has had no media; absent while media flows. */
export const ANNOTATION_MEDIA_SILENT_SINCE = 'tteok.dev/media-silent-since';

/** How often each held claim looks whether it has something to write or check. */
const TICK_MS = 100;
/** While its claim is marked silent, how often the holder reads it to learn of a takeover. */
const SILENT_CHECK_MS = 250;
/** How often a pod waiting for the holder's silence mark reads the claim. */
const SILENCE_POLL_MS = 200;
/** After a failed write, how long before trying again (the renewal interval still bounds it). */
const RETRY_MS = 1000;

/** A claim is renewed every third of its duration, so two renewals can fail before it expires. */
function renewIntervalMs(leaseDurationMs: number): number {
  return Math.max(500, leaseDurationMs / 3);
}

export interface ClaimsConfig {
  /** This pod's name: the holder identity. */
  podName: string;
  /** Where the claim Leases live: the ingest's namespace. */
  namespace: string;
  /** How long a claim outlives its holder's last renewal. */
  leaseDurationSeconds: number;
  /** `http://<pod IP>:<HTTP port>`: where this pod serves LL-HLS, written in its claims; none when undefined. */
  llOrigin?: string | undefined;
}

/** `http://<ip>:<port>` (IPv6 in brackets) from TTEOK_POD_IP; undefined without it. */
export function llOriginOf(podIp: string | undefined, httpPort: number): string | undefined {
  if (podIp === undefined) return undefined;
  const family = isIP(podIp);
  if (family === 0) throw new ConfigError(`TTEOK_POD_IP must be an IP address (status.podIP), got "${podIp}"`);
  return `http://${family === 6 ? `[${podIp}]` : podIp}:${httpPort}`;
}

export function claimsConfigFromEnv(env: Env): ClaimsConfig {
  return {
    podName: POD_ENV.podName.read(env),
    namespace: POD_ENV.podNamespace.read(env),
    leaseDurationSeconds: CLAIM_ENV.claimLeaseSeconds.read(env),
    llOrigin: llOriginOf(INGEST_POD_ENV.podIp.read(env), INGEST_ENV.httpPort.read(env)),
  };
}

export interface LeaseStreamClaimsOptions extends ClaimsConfig {
  kc: KubeConfig;
  log: Logger;
}

interface Held {
  lease: LeaseObject;
  timer: NodeJS.Timeout;
  /** The write or read in flight: one at a time per claim, so they never conflict with each other. */
  busy: Promise<void> | undefined;
  /** What the silence annotation should say (undefined: absent). */
  silentSince: string | undefined;
  /** performance.now() of the last successful write, and of the last read. */
  writtenAt: number;
  checkedAt: number;
  /** No write before this (performance.now()), after a failure. */
  retryAt: number;
}

export class LeaseStreamClaims implements StreamClaims {
  private readonly leases: LeaseClient;
  private readonly held = new Map<string, Held>();
  private readonly renewEveryMs: number;

  private readonly lostListeners: Array<(ref: StreamRef, lost: { newHolder?: string }) => void> = [];
  /** Aborted by stop(): ends the waits for a silence mark and the requests in flight at once. */
  private readonly stopping = new AbortController();
  /** The acquire() calls under way, for stop() to wait for. */
  private readonly acquiring = new Set<Promise<unknown>>();

  constructor(private readonly options: LeaseStreamClaimsOptions) {
    this.leases = new LeaseClient(options.kc, Math.max(2000, (options.leaseDurationSeconds * 1000) / 3), this.stopping.signal);
    this.renewEveryMs = renewIntervalMs(options.leaseDurationSeconds * 1000);
  }

  async acquire(ref: StreamRef, options: { waitForSilenceMs?: number } = {}): Promise<boolean | 'taken_over'> {
    const attempt = this.claim(ref, options);
    this.acquiring.add(attempt);
    try {
      return await attempt;
    } catch (err) {
      // Its request was cut short by stop(): this pod takes no stream any more.
      if (this.stopping.signal.aborted) return false;
      throw err;
    } finally {
      this.acquiring.delete(attempt);
    }
  }

  /**
   * Stops this pod's claims, at shutdown once its streams have released
   * theirs: a publish waiting for another pod's silence mark is refused at
   * once instead of at the end of its wait, requests in flight end, later
   * acquires are refused, and the claims still held are no longer renewed
   * (they expire, as after abandonAll). Resolves when nothing is under way.
   */
  async stop(): Promise<void> {
    this.stopping.abort();
    const busy = [...this.held.values()].map((held) => held.busy);
    this.abandonAll();
    await Promise.all([...this.acquiring, ...busy].map((p) => p?.catch(() => undefined)));
  }

  private async claim(ref: StreamRef, options: { waitForSilenceMs?: number }): Promise<boolean | 'taken_over'> {
    const { namespace, podName, leaseDurationSeconds } = this.options;
    const name = claimLeaseName(ref);
    const id = streamId(ref);
    const deadline = performance.now() + (options.waitForSilenceMs ?? 0);
    let conflicts = 0;
    // Bounded twice: by the deadline while waiting for a silence mark, and by three write conflicts.
    for (let round = 0; round < 1000 && conflicts < 3; round++) {
      if (this.stopping.signal.aborted) return false;
      const current = await this.leases.get(namespace, name);
      const now = microTime();
      let written: LeaseObject;
      let tookOverFrom: string | undefined;
      try {
        if (!current) {
          written = await this.leases.create(namespace, {
            metadata: {
              name,
              labels: { [LABEL_CLAIM]: 'true', [LABEL_LIVESTREAM_NAMESPACE]: ref.namespace, [LABEL_LIVESTREAM]: ref.name },
              ...(this.options.llOrigin ? { annotations: { [ANNOTATION_LL_ORIGIN]: this.options.llOrigin } } : {}),
            },
            spec: { holderIdentity: podName, leaseDurationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 },
          });
        } else {
          const holder = current.spec?.holderIdentity;
          if (holder && holder !== podName && leaseHeld(current)) {
            const silentSince = current.metadata.annotations?.[ANNOTATION_MEDIA_SILENT_SINCE];
            if (!silentSince) {
              // A holder that has missed a renewal (a dead pod) will not mark its stream silent either:
              // do not wait for it; its claim expires on its own.
              if (performance.now() < deadline && !this.missedRenewal(current)) {
                // stop() ends the wait; the next round then refuses.
                await sleep(SILENCE_POLL_MS, undefined, { signal: this.stopping.signal }).catch(() => undefined);
                continue;
              }
              this.options.log.info({ stream: id, holder }, 'stream is claimed by another ingest pod');
              return false;
            }
            // Its publisher went silent there: this publish takes the stream over.
            tookOverFrom = holder;
          }
          // Free, expired, ours from before a restart of this pod, or silent: take it, as a new run,
          // naming this pod's LL origin (never the previous holder's).
          const { [ANNOTATION_MEDIA_SILENT_SINCE]: _silent, [ANNOTATION_LL_ORIGIN]: _origin, ...annotations } = current.metadata.annotations ?? {};
          if (this.options.llOrigin) annotations[ANNOTATION_LL_ORIGIN] = this.options.llOrigin;
          written = await this.leases.replace(namespace, {
            ...current,
            metadata: { ...current.metadata, annotations },
            spec: {
              holderIdentity: podName,
              leaseDurationSeconds,
              acquireTime: now,
              renewTime: now,
              leaseTransitions: (current.spec?.leaseTransitions ?? 0) + (holder && holder !== podName ? 1 : 0),
            },
          });
        }
      } catch (err) {
        if (err instanceof KubeHttpError && err.statusCode === 409) {
          conflicts++; // someone wrote in between (a holder whose media resumed clears its mark): look again
          continue;
        }
        throw err;
      }
      if (this.stopping.signal.aborted) return false; // stopped while writing: it is not renewed and expires
      this.hold(ref, written);
      if (tookOverFrom === undefined) return true;
      this.options.log.info(
        { stream: id, from: tookOverFrom, silentSince: current?.metadata.annotations?.[ANNOTATION_MEDIA_SILENT_SINCE] },
        'took the stream claim over from another ingest pod whose publisher had gone silent',
      );
      return 'taken_over';
    }
    return false;
  }

  /** True when the holder has not renewed for one and a half renewal intervals (holders all renew on the same schedule). */
  private missedRenewal(lease: LeaseObject): boolean {
    const renewed = Date.parse(String(lease.spec?.renewTime ?? lease.spec?.acquireTime ?? ''));
    const duration = (lease.spec?.leaseDurationSeconds ?? this.options.leaseDurationSeconds) * 1000;
    return Number.isNaN(renewed) || Date.now() - renewed > 1.5 * renewIntervalMs(duration);
  }

  reportSilence(ref: StreamRef, silentSince: Date | undefined): void {
    const held = this.held.get(streamId(ref));
    if (!held) return;
    // Only the transitions matter (and are written): the first report of a silence gives its start.
    if ((silentSince === undefined) === (held.silentSince === undefined)) return;
    held.silentSince = silentSince ? microTime(silentSince) : undefined;
    this.tick(ref, held);
  }

  onLost(listener: (ref: StreamRef, lost: { newHolder?: string }) => void): void {
    this.lostListeners.push(listener);
  }

  async release(ref: StreamRef): Promise<void> {
    const id = streamId(ref);
    const held = this.held.get(id);
    if (!held) return;
    this.held.delete(id);
    clearInterval(held.timer);
    await held.busy?.catch(() => undefined);
    const name = claimLeaseName(ref);
    for (let attempt = 0; attempt < 3; attempt++) {
      const current = await this.leases.get(this.options.namespace, name);
      if (!current || current.spec?.holderIdentity !== this.options.podName) return;
      try {
        if (await this.leases.delete(this.options.namespace, name, current.metadata.resourceVersion)) return;
      } catch (err) {
        // The chart's admission policy refuses deleting a claim another pod holds: taken over since the read. Read again.
        if (!(err instanceof KubeHttpError && err.statusCode === 403)) throw err;
      }
    }
  }

  /** Stops renewing every claim without releasing them (they expire); for a crash-like stop in tests. */
  abandonAll(): void {
    for (const held of this.held.values()) clearInterval(held.timer);
    this.held.clear();
  }

  private hold(ref: StreamRef, lease: LeaseObject): void {
    const id = streamId(ref);
    const previous = this.held.get(id);
    if (previous) clearInterval(previous.timer);
    const now = performance.now();
    const held: Held = {
      lease,
      busy: undefined,
      silentSince: undefined,
      writtenAt: now,
      checkedAt: now,
      retryAt: 0,
      timer: setInterval(() => this.tick(ref, held), TICK_MS),
    };
    held.timer.unref();
    this.held.set(id, held);
  }

  /** Starts whatever the claim needs now: a write (renewal, silence mark changed), a read while silent, or nothing. */
  private tick(ref: StreamRef, held: Held): void {
    if (held.busy || this.held.get(streamId(ref)) !== held) return;
    const now = performance.now();
    const marked = held.lease.metadata.annotations?.[ANNOTATION_MEDIA_SILENT_SINCE];
    const markChanged = (marked === undefined) !== (held.silentSince === undefined);
    let work: (() => Promise<void>) | undefined;
    if (now >= held.retryAt && (markChanged || now - held.writtenAt >= this.renewEveryMs)) work = () => this.write(ref, held);
    else if (marked !== undefined && now - held.checkedAt >= SILENT_CHECK_MS) work = () => this.check(ref, held);
    if (!work) return;
    held.busy = work().finally(() => {
      held.busy = undefined;
    });
  }

  /** Renews the claim, with the silence annotation as it should be. */
  private async write(ref: StreamRef, held: Held): Promise<void> {
    const { namespace } = this.options;
    const { [ANNOTATION_MEDIA_SILENT_SINCE]: _previous, ...annotations } = held.lease.metadata.annotations ?? {};
    if (held.silentSince !== undefined) annotations[ANNOTATION_MEDIA_SILENT_SINCE] = held.silentSince;
    try {
      held.lease = await this.leases.replace(namespace, {
        ...held.lease,
        metadata: { ...held.lease.metadata, annotations },
        spec: { ...held.lease.spec, renewTime: microTime() },
      });
      held.writtenAt = held.checkedAt = performance.now();
    } catch (err) {
      if (this.stopping.signal.aborted) return; // cut short by stop(): the claim is no longer renewed anyway
      if (!(err instanceof KubeHttpError) || (err.statusCode !== 409 && err.statusCode !== 404)) {
        held.retryAt = performance.now() + RETRY_MS;
        this.options.log.warn({ stream: streamId(ref), err: (err as Error).message }, 'could not renew the stream claim; retrying');
        return;
      }
      // Changed under us: still ours (e.g. our own earlier write) → continue from it; otherwise lost.
      await this.check(ref, held);
    }
  }

  /** Reads the claim: still ours → carry on from what is stored; taken over or deleted → lost. */
  private async check(ref: StreamRef, held: Held): Promise<void> {
    const { namespace, podName } = this.options;
    let current: LeaseObject | undefined;
    try {
      current = await this.leases.get(namespace, claimLeaseName(ref));
    } catch {
      held.checkedAt = performance.now();
      return; // API unreachable: nothing learned; the renewal deadline still applies
    }
    held.checkedAt = performance.now();
    if (current && current.spec?.holderIdentity === podName) {
      held.lease = current;
      return;
    }
    if (this.held.get(streamId(ref)) !== held) return;
    clearInterval(held.timer);
    this.held.delete(streamId(ref));
    const holder = current?.spec?.holderIdentity;
    if (held.silentSince !== undefined && holder) {
      this.options.log.warn({ stream: streamId(ref), holder }, 'another ingest pod took the stream over: its publisher had gone silent here');
    } else {
      this.options.log.error({ stream: streamId(ref), holder }, 'lost the stream claim (it expired and another pod took it, or it was deleted)');
    }
    // Another pod holds it now and writes the stream's playlist: the run is handed over.
    for (const listener of this.lostListeners) listener(ref, holder && holder !== podName ? { newHolder: holder } : {});
  }
}
