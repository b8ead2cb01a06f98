// Which webhook events a reconcile produces, and what a delivery says.
// Events are derived from durable state only — the LiveStream status the
// controller last wrote against the status it is about to write — and are
// recorded in that same status write (status.webhookEvents). So an event is
// recorded exactly when its transition is, whichever replica leads, and a
// controller that dies before delivering finds it there after a restart.
//   stream.live            the Live condition turns True (a claim is held)
//   stream.offline         it turns False (the claim was released or expired)
//   stream.recording_ready it turns False because the ingest released its
//                          claim, with retention.keepAfterEnd: the ingest
//                          holds the claim until the ended run's last objects
//                          (the VOD playlist) are stored, so the release is
//                          that moment. An expired claim (the ingest died)
//                          says nothing about the recording: no event.
//   stream.key_rotated     status.streamKeySha256 changes from one key to
//                          another (spec.keyRotation, or a key set by hand)
import { randomUUID } from 'node:crypto';
import type { StreamRef } from '../common/livestream.ts';
import type { LiveStreamStatus } from '../common/kube/contract.ts';

export const WEBHOOK_EVENT_TYPES = ['stream.live', 'stream.offline', 'stream.recording_ready', 'stream.key_rotated'] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

export interface WebhookEventData {
  liveSince?: string;
  endedAt?: string;
  ingestPod?: string;
  playbackUrl?: string;
  keyRotation?: number;
  streamKeySecret?: string;
}

/** One event as status.webhookEvents holds it until every webhook it is for has acknowledged it. */
export interface WebhookEventRecord {
  id: string;
  type: WebhookEventType;
  createdAt: string;
  data: WebhookEventData;
  /** Ids of the webhooks (webhookTargetId) that have not acknowledged it yet. */
  pendingTargets: string[];
}

export type StatusWithWebhooks = LiveStreamStatus & { webhookEvents?: WebhookEventRecord[] };

export interface NewWebhookEvent {
  type: WebhookEventType;
  data: WebhookEventData;
}

export interface TransitionFacts {
  old: LiveStreamStatus;
  next: LiveStreamStatus;
  keepAfterEnd: boolean;
  /** No claim Lease exists: the ingest released it (as opposed to one that merely expired). */
  claimReleased: boolean;
  keyRotation: number;
  now: Date;
}

const isLive = (s: LiveStreamStatus) => s.conditions?.find((c) => c.type === 'Live')?.status === 'True';

export function detectWebhookEvents(f: TransitionFacts): NewWebhookEvent[] {
  const events: NewWebhookEvent[] = [];
  const playback = f.next.playbackUrl ?? f.old.playbackUrl;
  const wasLive = isLive(f.old);
  const live = isLive(f.next);
  if (!wasLive && live) {
    events.push({
      type: 'stream.live',
      data: {
        ...(f.next.liveSince ? { liveSince: f.next.liveSince } : {}),
        ...(f.next.ingestPod ? { ingestPod: f.next.ingestPod } : {}),
        ...(playback ? { playbackUrl: playback } : {}),
      },
    });
  }
  if (wasLive && !live) {
    const data: WebhookEventData = {
      ...(f.old.liveSince ? { liveSince: f.old.liveSince } : {}),
      endedAt: f.now.toISOString(),
      ...(playback ? { playbackUrl: playback } : {}),
    };
    events.push({ type: 'stream.offline', data });
    if (f.keepAfterEnd && f.claimReleased) events.push({ type: 'stream.recording_ready', data });
  }
  if (f.old.streamKeySha256 && f.next.streamKeySha256 && f.old.streamKeySha256 !== f.next.streamKeySha256) {
    events.push({
      type: 'stream.key_rotated',
      data: { keyRotation: f.keyRotation, ...(f.next.streamKeySecret ? { streamKeySecret: f.next.streamKeySecret } : {}) },
    });
  }
  return events;
}

export function newEventId(): string {
  return `evt_${randomUUID().replaceAll('-', '')}`;
}

/** The JSON body of a delivery: the same bytes for every attempt of the same event. */
export function webhookBody(ref: StreamRef, event: Pick<WebhookEventRecord, 'id' | 'type' | 'createdAt' | 'data'>): string {
  return JSON.stringify({ id: event.id, type: event.type, createdAt: event.createdAt, stream: { namespace: ref.namespace, name: ref.name }, data: event.data });
}
