// Caps on open RTMP connections, per pod and per client address. A connection
// over a cap is not dropped at once: it may go as far as its publish and is
// then refused with an onStatus error saying why, so the streamer can read it.
// Only a few such connections are carried at a time (REFUSAL_SLOTS); beyond
// that a connection over a cap is closed as soon as it is accepted, so open
// sockets never exceed the pod cap plus those slots.

/** Over-cap connections carried at once to tell them why they are refused. */
export const REFUSAL_SLOTS = 16;

export type ConnectionVerdict = { kind: 'admit' } | { kind: 'refuse'; reason: 'server_full' | 'address_full' } | { kind: 'drop' };

export class ConnectionLimits {
  private total = 0;
  private readonly perAddress = new Map<string, number>();
  private refusing = 0;

  constructor(
    private readonly maxConnections: number,
    private readonly maxPerAddress: number,
  ) {}

  get open(): number {
    return this.total;
  }

  /** Counts a new connection and says what to do with it; `release` it when it closes. */
  accept(address: string): { verdict: ConnectionVerdict; release: () => void } {
    const fromAddress = (this.perAddress.get(address) ?? 0) + 1;
    const over = this.total + 1 > this.maxConnections ? 'server_full' : fromAddress > this.maxPerAddress ? 'address_full' : undefined;
    if (over && this.refusing >= REFUSAL_SLOTS) return { verdict: { kind: 'drop' }, release: () => undefined };
    this.total += 1;
    this.perAddress.set(address, fromAddress);
    if (over) this.refusing += 1;
    let released = false;
    return {
      verdict: over ? { kind: 'refuse', reason: over } : { kind: 'admit' },
      release: () => {
        if (released) return;
        released = true;
        this.total -= 1;
        if (over) this.refusing -= 1;
        const left = (this.perAddress.get(address) ?? 1) - 1;
        if (left > 0) this.perAddress.set(address, left);
        else this.perAddress.delete(address);
      },
    };
  }
}
