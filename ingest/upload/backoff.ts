// Moved: the backoff is common/backoff.ts, sleeping is node:timers/promises.
// Kept while ingest/packager/stream-packager.ts, ingest/stream-hub.ts and
// ingest/claims/lease-claims.ts import them from here.
export { backoffDelay } from '../../common/backoff.ts';
export { setTimeout as sleep } from 'node:timers/promises';
