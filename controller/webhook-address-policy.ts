// Where a LiveStream's webhook may connect. Whoever may create a LiveStream
// chooses its spec.webhooks URLs, and the controller runs inside the cluster:
// without a rule it would POST to the cluster's own services, the cloud's
// metadata endpoint or the node, and the WebhookFailed Event would tell the
// author what answered (a port scanner). So the controller connects only to
// public addresses: loopback, link-local, private (RFC 1918, IPv6 ULA),
// carrier-grade NAT, unspecified, multicast and reserved addresses are
// refused, as is any range the operator adds (TTEOK_WEBHOOK_BLOCKED_CIDRS:
// pod and service ranges that are not private), unless the operator allows a
// range explicitly (TTEOK_WEBHOOK_ALLOWED_CIDRS).
//
// The check is on the resolved address, on every attempt, and the socket
// connects to the very address that was checked: the http agent is given a
// `lookup` that resolves, filters and hands back only allowed addresses, so
// a DNS answer that changes between a check and the connection (rebinding)
// has no window. A URL whose host is an IP literal is checked as is (Node
// skips `lookup` for those).
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';

/** Address ranges refused unless allowed: what a request from inside the cluster must not reach. */
export const BUILT_IN_BLOCKED_CIDRS: readonly string[] = [
  '0.0.0.0/8', // "this network", 0.0.0.0 (unspecified)
  '10.0.0.0/8', // RFC 1918
  '100.64.0.0/10', // carrier-grade NAT (RFC 6598), used by some clusters for pods
  '127.0.0.0/8', // loopback
  '169.254.0.0/16', // link-local, cloud metadata endpoints
  '172.16.0.0/12', // RFC 1918
  '192.0.0.0/24', // IETF protocol assignments
  '192.168.0.0/16', // RFC 1918
  '198.18.0.0/15', // benchmarking
  '224.0.0.0/4', // multicast
  '240.0.0.0/4', // reserved, and 255.255.255.255 (broadcast)
  '::/96', // unspecified, loopback (::1) and IPv4-compatible addresses
  'fe80::/10', // link-local
  'fc00::/7', // unique local (ULA)
  'ff00::/8', // multicast
];

/** The error a connection refused by the policy fails with; never carries the address. */
export class AddressBlockedError extends Error {
  readonly code = 'ETTEOK_ADDRESS_BLOCKED';
  constructor() {
    super('blocked by address policy');
  }
}

/** A parsed "address/bits" (or a bare address: one host); undefined when it is not one. */
export function parseCidr(text: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const [address = '', bits, ...rest] = text.trim().split('/');
  const version = isIP(address);
  if (version === 0 || rest.length > 0) return undefined;
  const max = version === 4 ? 32 : 128;
  const prefix = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) return undefined;
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

function blockList(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const c of cidrs) {
    const p = parseCidr(c);
    if (!p) throw new Error(`not an address range: "${c}"`);
    list.addSubnet(p.address, p.prefix, p.family);
  }
  return list;
}

export type Resolver = (hostname: string) => Promise<LookupAddress[]>;

const systemResolver: Resolver = (hostname) =>
  new Promise((resolve, reject) => dnsLookup(hostname, { all: true, verbatim: true }, (err, addresses) => (err ? reject(err) : resolve(addresses))));

export interface AddressPolicyOptions {
  /** Ranges allowed although blocked (TTEOK_WEBHOOK_ALLOWED_CIDRS). */
  allowedCidrs: readonly string[];
  /** Ranges blocked besides the built-in ones (TTEOK_WEBHOOK_BLOCKED_CIDRS). */
  blockedCidrs: readonly string[];
  /** How names are resolved (tests give their own); the system resolver by default. */
  resolve?: Resolver;
}

export class WebhookAddressPolicy {
  private readonly blocked: BlockList;
  private readonly allowedList: BlockList;
  private readonly resolve: Resolver;

  constructor(o: AddressPolicyOptions) {
    this.blocked = blockList([...BUILT_IN_BLOCKED_CIDRS, ...o.blockedCidrs]);
    this.allowedList = blockList(o.allowedCidrs);
    this.resolve = o.resolve ?? systemResolver;
  }

  /** Whether the controller may connect to this IP address. */
  allows(address: string): boolean {
    const version = isIP(address);
    if (version === 0) return false;
    const family = version === 4 ? 'ipv4' : 'ipv6';
    // BlockList matches an IPv4-mapped IPv6 address (::ffff:10.0.0.1) against IPv4 ranges too.
    return this.allowedList.check(address, family) || !this.blocked.check(address, family);
  }

  /**
   * A `lookup` for node:http(s) requests: resolves the name and answers with
   * the allowed addresses only (the socket connects to one of them), or fails
   * with AddressBlockedError when none is allowed.
   */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    this.resolve(hostname).then(
      (addresses) => {
        const wanted = options.family === 4 || options.family === 6 ? addresses.filter((a) => a.family === options.family) : addresses;
        const ok = wanted.filter((a) => this.allows(a.address));
        if (ok.length === 0) return callback(new AddressBlockedError(), '', 4);
        if (options.all) return (callback as unknown as (err: null, addresses: LookupAddress[]) => void)(null, ok);
        callback(null, ok[0]!.address, ok[0]!.family);
      },
      (err: NodeJS.ErrnoException) => callback(err, '', 4),
    );
  };

  /** For a URL's host that is an IP literal (no lookup happens for those): whether it may be connected to. */
  allowsHost(hostname: string): boolean {
    const bare = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
    return isIP(bare) === 0 || this.allows(bare);
  }
}
