// A refusal decided before a connection says anything: at its `publish`
// (over a connection cap, see rtmp-server.ts), or at its `connect`, before
// the client sends its key (plain RTMP on the RTMPS port, see
// rtmps-listener.ts). RtmpConnection sends it as an onStatus error.
export interface Refusal {
  at: 'connect' | 'publish';
  /** The onStatus code. */
  code: string;
  /** A metric label (tteok_ingest_publishes_total{outcome}). */
  reason: string;
  /** The sentence the client reads. */
  description: string;
}
