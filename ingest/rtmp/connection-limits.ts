// Caps on open RTMP connections, per pod and per client address. A connection
// over a cap is not dropped at once: it may go as far as its publish and is
// then refused with an onStatus error saying why, so the streamer can read it.
// Only a few such connections are carried at a time (REFUSAL_SLOTS); beyond
// that a connection over a cap is closed as soon as it is accepted, so open
// sockets never exceed the pod cap plus those slots.

/** Over-cap connections carried at once to tell them why they are refused. */
export const REFUSAL_SLOTS = 16;

export type ConnectionVerdict = { kind: 'admit' } | { kind: 'refuse'; reason: 'server_full' | 'address_full' } | { kind: 'drop' };

/**
 * The client's address as a cap counts it: IPv4 as is (also when mapped into
 * IPv6), IPv6 by its /64, the block one subscriber usually gets.
 */
export function addressKey(remote: string | undefined): string {
  if (!remote) return 'unknown';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(remote);
  if (mapped) return mapped[1]!;
  if (!remote.includes(':')) return remote;
  const [head = '', tail = ''] = remote.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = remote.includes('::') ? [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((g) => g.toLowerCase().replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

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
