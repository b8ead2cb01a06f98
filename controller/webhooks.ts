// Webhook delivery. The durable queue is the LiveStream status: every event
// not yet acknowledged by every webhook it is for sits in
// status.webhookEvents with the ids of the webhooks still owed it. This
// module (only on the leader)
//   - plans the next status: the recorded events minus what was delivered,
//     given up or whose webhook is gone, plus the reconcile's new events;
//   - delivers each (event, webhook) pair: a signed POST, retried with the
//     project's backoff (common/backoff.ts) until a 2xx or until the
//     event is TTEOK_WEBHOOK_MAX_AGE_SECONDS old;
//   - reports an outcome by enqueueing the LiveStream, whose next reconcile
//     removes it from the status.
// What is delivered is remembered only in memory until that status write: a
// controller that dies in between (or loses leadership) delivers the event
// again from the status after the restart. That is the at-least-once
// contract; receivers dedupe by the event id.
import { createHash } from 'node:crypto';
import type { KubeConfig, V1Secret } from '@kubernetes/client-node';
import { backoffDelay } from '../common/backoff.ts';
import { streamId, type StreamRef } from '../common/livestream.ts';
import type { Logger } from '../common/log.ts';
import { errorMessage, rawJson, statusCode } from '../common/kube/client.ts';
import { secretsPath } from '../common/kube/contract.ts';
import { MIN_WEBHOOK_SECRET_LENGTH, type WebhookConfig } from './config.ts';
import type { EventRecorder } from './events.ts';
import type { ControllerMetrics } from './metrics.ts';
import type { LiveStream } from './reconciler.ts';
import { WebhookAddressPolicy } from './webhook-address-policy.ts';
import { postWebhook, type FailureClass } from './webhook-post.ts';
import { SIGNATURE_HEADER, webhookSignature } from './webhook-signature.ts';
import { urlAllowed, webhookUrlProblem } from './webhook-url.ts';
import { newEventId, webhookBody, type NewWebhookEvent, type StatusWithWebhooks, type WebhookEventRecord, type WebhookEventType } from './webhook-events.ts';

/** spec.webhooks[] as the CRD defines it. */
export interface WebhookSpec {
  url: string;
  secretRef: { name: string; key?: string };
  events?: WebhookEventType[];
}

export const DEFAULT_SECRET_KEY = 'signingKey';
/**
 * A Secret must carry this label (value "true") to be used as a signing key.
 * Whoever may create a LiveStream may name any Secret of its namespace in
 * spec.webhooks; without this opt-in the controller, which may read them all,
 * would sign with (and so offer an offline-guessing oracle on) Secrets the
 * LiveStream's author may not read.
 */
export const LABEL_WEBHOOK_SIGNING_KEY = 'tteok.dev/webhook-signing-key';
export const GLOBAL_TARGET = 'global';

/** A signing key Secret that is missing, unlabelled or too short: one message for all three. */
class UnusableSigningKey extends Error {}

type SigningKey = { value: string } | { namespace: string; name: string; key: string };

interface WebhookTarget {
  id: string;
  url: string;
  signingKey: SigningKey;
  events: ReadonlySet<WebhookEventType> | undefined;
  /** How Events and logs name it: never the query string, which may carry a token. */
  label: string;
  /** Whether the address policy applies: to spec.webhooks, not to the operator's own global webhook. */
  checkAddress: boolean;
}

type Outcome = 'delivered' | 'expired' | 'dropped';

export { urlAllowed };

/**
 * The id status.webhookEvents[].pendingTargets uses for a webhook of
 * spec.webhooks: a hash of its URL (unique in the list), so the status does
 * not repeat a URL that may carry a token.
 */
export function webhookTargetId(url: string): string {
  return `url-${createHash('sha256').update(url, 'utf8').digest('hex').slice(0, 16)}`;
}

function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}

interface Delivery {
  ref: StreamRef;
  uid: string | undefined;
  event: WebhookEventRecord;
  target: WebhookTarget;
  attempts: number;
  timer: NodeJS.Timeout | undefined;
}

export interface WebhookDispatcherOptions {
  kc: KubeConfig;
  config: WebhookConfig;
  metrics: ControllerMetrics;
  events: EventRecorder;
  log: Logger;
  /** An outcome is ready to be written to this LiveStream's status: reconcile it. */
  onSettled: (ref: StreamRef) => void;
}

export interface WebhookPlan {
  /** What status.webhookEvents should be (empty: the field goes). */
  pending: WebhookEventRecord[];
  /** Call once the status holding `pending` is written. */
  commit(): void;
}

export class WebhookDispatcher {
  /** Outcomes not yet written to the status: event id → target id → outcome. */
  private readonly settled = new Map<string, Map<string, Outcome>>();
  /** Which stream each settled event belongs to ("namespace/name"), to forget them with the stream. */
  private readonly settledStream = new Map<string, string>();
  private readonly deliveries = new Map<string, Delivery>();
  private abort = new AbortController();
  private inFlight = 0;
  private readonly waiting: Array<() => void> = [];

  private readonly addressPolicy: WebhookAddressPolicy;

  constructor(private readonly o: WebhookDispatcherOptions) {
    this.addressPolicy = new WebhookAddressPolicy(o.config.addressPolicy);
  }

  /** Whether TTEOK_WEBHOOK_ALLOWED_URL_PREFIXES lets a LiveStream send to this URL. */
  allowed(url: string): boolean {
    return urlAllowed(url, this.o.config.allowedUrlPrefixes);
  }

  /** The webhooks a LiveStream's events go to: its own (those allowed), then the global one. */
  targetsOf(ls: LiveStream): WebhookTarget[] {
    const targets: WebhookTarget[] = [];
    const specs = ((ls.spec as { webhooks?: WebhookSpec[] } | undefined)?.webhooks ?? []).filter(
      (w) => typeof w?.url === 'string' && w.secretRef?.name && this.allowed(w.url),
    );
    for (const w of specs) {
      targets.push({
        id: webhookTargetId(w.url),
        url: w.url,
        signingKey: { namespace: ls.metadata.namespace!, name: w.secretRef.name, key: w.secretRef.key ?? DEFAULT_SECRET_KEY },
        events: w.events?.length ? new Set(w.events) : undefined,
        label: describeUrl(w.url),
        checkAddress: true,
      });
    }
    const g = this.o.config.global;
    if (g)
      targets.push({
        id: GLOBAL_TARGET,
        url: g.url,
        signingKey: { value: g.secret },
        events: new Set(g.events),
        label: 'the global webhook',
        checkAddress: false,
      });
    return targets;
  }

  /** The status.webhookEvents the reconcile should write, with the reconcile's new events added. */
  plan(ls: LiveStream, ref: StreamRef, fresh: NewWebhookEvent[], now = new Date()): WebhookPlan {
    const targets = new Map(this.targetsOf(ls).map((t) => [t.id, t]));
    const recorded = ((ls.status ?? {}) as StatusWithWebhooks).webhookEvents ?? [];
    const closedHere: Array<{ event: WebhookEventRecord; targetId: string; outcome: Outcome; why?: string }> = [];
    let pending: WebhookEventRecord[] = [];
    for (const event of recorded) {
      const done = this.settled.get(event.id);
      const remaining: string[] = [];
      for (const id of event.pendingTargets ?? []) {
        if (done?.has(id)) continue;
        if (!targets.has(id)) closedHere.push({ event, targetId: id, outcome: 'dropped', why: 'its webhook was removed' });
        else remaining.push(id);
      }
      if (remaining.length > 0) pending.push({ ...event, pendingTargets: remaining });
    }
    for (const e of fresh) {
      const owed = [...targets.values()].filter((t) => !t.events || t.events.has(e.type)).map((t) => t.id);
      if (owed.length > 0) pending.push({ id: newEventId(), type: e.type, createdAt: now.toISOString(), data: e.data, pendingTargets: owed });
    }
    const refused =
      fresh.length > 0
        ? ((ls.spec as { webhooks?: WebhookSpec[] } | undefined)?.webhooks ?? []).filter((w) => typeof w?.url === 'string' && !this.allowed(w.url))
        : [];
    const excess = pending.length - this.o.config.maxPending;
    if (excess > 0) {
      for (const event of pending.slice(0, excess)) {
        for (const id of event.pendingTargets)
          closedHere.push({ event, targetId: id, outcome: 'dropped', why: `the stream has more than ${this.o.config.maxPending} undelivered events` });
      }
      pending = pending.slice(excess);
    }
    const keep = new Set(pending.map((e) => e.id));
    return {
      pending,
      commit: () => {
        // Outcomes now in the status (their event or target gone from it) need no memory any more.
        for (const event of recorded) {
          if (keep.has(event.id)) continue;
          this.settled.delete(event.id);
          this.settledStream.delete(event.id);
        }
        const target = { namespace: ref.namespace, name: ref.name, uid: ls.metadata.uid };
        for (const w of refused) {
          const problem = webhookUrlProblem(w.url);
          const why = problem ?? 'it starts with none of the URL prefixes the controller allows (TTEOK_WEBHOOK_ALLOWED_URL_PREFIXES)';
          this.o.events.warning(target, 'WebhookNotAllowed', `Not sending events to ${describeUrl(w.url)}: ${why}`);
        }
        for (const c of closedHere) {
          this.cancel(c.event.id, c.targetId);
          this.o.metrics.webhookDeliveries.inc({ event: c.event.type, outcome: c.outcome });
          const label = targets.get(c.targetId)?.label ?? `webhook ${c.targetId}`;
          this.o.log.warn({ stream: streamId(ref), event: c.event.type, eventId: c.event.id, webhook: label }, `webhook event dropped: ${c.why}`);
          this.o.events.warning(target, 'WebhookDropped', `Dropped ${c.event.type} event ${c.event.id} for ${label}: ${c.why}`);
        }
      },
    };
  }

  /** Starts delivering whatever `ls` (as written) owes that is not being delivered yet. */
  sync(ls: LiveStream, ref: StreamRef): void {
    const targets = new Map(this.targetsOf(ls).map((t) => [t.id, t]));
    for (const event of ((ls.status ?? {}) as StatusWithWebhooks).webhookEvents ?? []) {
      for (const targetId of event.pendingTargets ?? []) {
        const key = `${event.id}|${targetId}`;
        const target = targets.get(targetId);
        const running = this.deliveries.get(key);
        if (running && target) running.target = target; // its Secret reference may have changed: the next attempt uses the new one
        if (!target || running || this.settled.get(event.id)?.has(targetId)) continue;
        const d: Delivery = { ref, uid: ls.metadata.uid, event, target, attempts: 0, timer: undefined };
        this.deliveries.set(key, d);
        void this.attempt(key, d);
      }
    }
    this.o.metrics.webhookPending.set(this.deliveries.size);
  }

  /** The LiveStream is gone: forget its deliveries (its status, the queue, is gone with it). */
  forgetStream(ref: StreamRef): void {
    const id = streamId(ref);
    for (const [key, d] of this.deliveries) {
      if (streamId(d.ref) === id) {
        clearTimeout(d.timer);
        this.deliveries.delete(key);
      }
    }
    for (const [eventId, stream] of this.settledStream) {
      if (stream !== id) continue;
      this.settled.delete(eventId);
      this.settledStream.delete(eventId);
    }
    this.o.metrics.webhookPending.set(this.deliveries.size);
  }

  /** Leadership lost or shutting down: stop every delivery; the next leader resumes them from the status. */
  stop(): void {
    this.abort.abort();
    this.abort = new AbortController();
    for (const d of this.deliveries.values()) clearTimeout(d.timer);
    this.deliveries.clear();
    this.settled.clear();
    this.settledStream.clear();
    for (const w of this.waiting.splice(0)) w();
    this.o.metrics.webhookPending.set(0);
  }

  private cancel(eventId: string, targetId: string): void {
    const key = `${eventId}|${targetId}`;
    const d = this.deliveries.get(key);
    if (d) clearTimeout(d.timer);
    this.deliveries.delete(key);
    this.o.metrics.webhookPending.set(this.deliveries.size);
  }

  private async attempt(key: string, d: Delivery): Promise<void> {
    d.timer = undefined;
    const signal = this.abort.signal;
    const deadline = Date.parse(d.event.createdAt) + this.o.config.maxAgeMs;
    if (Date.now() >= deadline) return this.settle(key, d, 'expired');
    await this.slot(signal);
    let failure: string | undefined;
    let detail: string | undefined;
    try {
      if (signal.aborted || this.deliveries.get(key) !== d) return;
      d.attempts++;
      ({ failure, detail } = await this.post(d, signal));
    } finally {
      this.release();
    }
    if (signal.aborted || this.deliveries.get(key) !== d) return;
    if (failure === undefined) return this.settle(key, d, 'delivered');
    this.o.metrics.webhookDeliveries.inc({ event: d.event.type, outcome: 'failed' });
    const delay = Math.min(backoffDelay(d.attempts - 1, this.o.config.retryInitialMs, this.o.config.retryMaxMs), Math.max(0, deadline - Date.now()));
    this.o.log.info(
      {
        stream: streamId(d.ref),
        event: d.event.type,
        eventId: d.event.id,
        webhook: d.target.label,
        attempt: d.attempts,
        err: detail ?? failure,
        retryInMs: delay,
      },
      'webhook delivery failed; retrying with backoff',
    );
    // The same message each time, so repeats bump one Event's count instead of piling up Events.
    this.o.events.warning(this.targetOf(d), 'WebhookFailed', `Delivering ${d.event.type} to ${d.target.label} failed: ${failure}; retrying with backoff`);
    d.timer = setTimeout(() => void this.attempt(key, d), delay);
    d.timer.unref();
  }

  /**
   * One POST. failure undefined: acknowledged (2xx); else what the Event
   * says: a class (webhook-post.ts), or why the signing key is unusable;
   * detail is for the log only.
   */
  private async post(d: Delivery, signal: AbortSignal): Promise<{ failure: FailureClass | string | undefined; detail?: string }> {
    let secret: string;
    try {
      secret = await this.signingKey(d.target.signingKey);
    } catch (err) {
      // The Event says why the key is unusable; an API error (which may name the API server's address) goes to the log only.
      if (err instanceof UnusableSigningKey) return { failure: err.message };
      return { failure: "signing key Secret could not be read (see the controller's log)", detail: errorMessage(err) };
    }
    const body = webhookBody(d.ref, d.event);
    const result = await postWebhook({
      url: d.target.url,
      headers: {
        'content-type': 'application/json',
        'user-agent': 'tteok-webhooks/1',
        'tteok-event-id': d.event.id,
        'tteok-event-type': d.event.type,
        [SIGNATURE_HEADER.toLowerCase()]: webhookSignature(secret, body, Math.floor(Date.now() / 1000)),
      },
      body,
      timeoutMs: this.o.config.timeoutMs,
      signal,
      policy: d.target.checkAddress ? this.addressPolicy : undefined,
    });
    if (result.failure === 'timeout')
      return { failure: `timeout (no answer within ${this.o.config.timeoutMs / 1000} s)`, ...(result.detail ? { detail: result.detail } : {}) };
    return result;
  }

  private async signingKey(k: SigningKey): Promise<string> {
    if ('value' in k) return k.value;
    // One message for every reason, so a LiveStream's Events cannot be used to probe which Secrets exist.
    const unusable = new UnusableSigningKey(
      `signing key Secret ${k.name} not found, not labelled ${LABEL_WEBHOOK_SIGNING_KEY}=true, or without a key "${k.key}" of at least ${MIN_WEBHOOK_SECRET_LENGTH} characters`,
    );
    let secret: V1Secret;
    try {
      secret = await rawJson<V1Secret>(this.o.kc, `${secretsPath(k.namespace)}/${encodeURIComponent(k.name)}`);
    } catch (err) {
      if (statusCode(err) === 404) throw unusable;
      throw err;
    }
    if (secret.metadata?.labels?.[LABEL_WEBHOOK_SIGNING_KEY] !== 'true') throw unusable;
    const value = Buffer.from(secret.data?.[k.key] ?? '', 'base64').toString('utf8');
    if (value.length < MIN_WEBHOOK_SECRET_LENGTH) throw unusable;
    return value;
  }

  private settle(key: string, d: Delivery, outcome: Outcome): void {
    this.deliveries.delete(key);
    let done = this.settled.get(d.event.id);
    if (!done) this.settled.set(d.event.id, (done = new Map()));
    this.settledStream.set(d.event.id, streamId(d.ref));
    done.set(d.target.id, outcome);
    this.o.metrics.webhookDeliveries.inc({ event: d.event.type, outcome });
    this.o.metrics.webhookPending.set(this.deliveries.size);
    const fields = { stream: streamId(d.ref), event: d.event.type, eventId: d.event.id, webhook: d.target.label, attempts: d.attempts };
    if (outcome === 'delivered') {
      this.o.log.info(fields, 'webhook delivered');
      this.o.events.normal(this.targetOf(d), 'WebhookDelivered', `Delivered ${d.event.type} event ${d.event.id} to ${d.target.label} (attempt ${d.attempts})`);
    } else {
      const hours = this.o.config.maxAgeMs / 3_600_000;
      this.o.log.warn(fields, 'webhook delivery given up: the event is too old');
      this.o.events.warning(
        this.targetOf(d),
        'WebhookGaveUp',
        `Gave up delivering ${d.event.type} event ${d.event.id} to ${d.target.label} after ${d.attempts} attempts in ${hours >= 1 ? `${hours} h` : `${this.o.config.maxAgeMs / 1000} s`}`,
      );
    }
    this.o.onSettled(d.ref);
  }

  private targetOf(d: Delivery) {
    return { namespace: d.ref.namespace, name: d.ref.name, ...(d.uid ? { uid: d.uid } : {}) };
  }

  /** Waits for one of TTEOK_WEBHOOK_CONCURRENCY slots (or for stop()). */
  private async slot(signal: AbortSignal): Promise<void> {
    if (this.inFlight < this.o.config.concurrency || signal.aborted) {
      this.inFlight++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.inFlight++;
  }

  private release(): void {
    this.inFlight--;
    const next = this.waiting.shift();
    if (next) next();
  }
}
