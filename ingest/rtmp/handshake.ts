// The RTMP handshake, server side: C0 (version) and C1 (1536 bytes) in, S0, S1
// and S2 out, then C2 (1536 bytes, not checked) in. Clients that sign C1 the
// Flash Player way (the "complex" handshake) get signed S1/S2 back, as
// Adobe's servers and node-media-server answer; others get C1 echoed. All
// offsets below stay inside the fixed 1536-byte C1, whatever it holds.
import { createHmac, randomBytes } from 'node:crypto';

export const RTMP_VERSION = 3;
export const HANDSHAKE_SIZE = 1536;

const DIGEST_SIZE = 32;
const RANDOM_CRUD = Buffer.from('f0eec24a8068bee82e00d0d1029e7e576eec5d2d29806fab93b8e636cfeb31ae', 'hex');
const FMS_KEY = 'Genuine Adobe Flash Media Server 001';
const FMS_KEY_FULL = Buffer.concat([Buffer.from(FMS_KEY, 'utf8'), RANDOM_CRUD]);
const FP_KEY = 'Genuine Adobe Flash Player 001';

const hmac = (data: Buffer, key: Buffer | string) => createHmac('sha256', key).update(data).digest();

/** Where the digest sits: scheme 1 keys it off bytes 8–11, scheme 2 off bytes 772–775. */
function digestOffset(sig: Buffer, scheme: 1 | 2): number {
  const base = scheme === 1 ? 8 : 772;
  const sum = sig[base]! + sig[base + 1]! + sig[base + 2]! + sig[base + 3]!;
  return (sum % 728) + (scheme === 1 ? 12 : 776);
}

function hasValidDigest(sig: Buffer, scheme: 1 | 2): boolean {
  const at = digestOffset(sig, scheme);
  const message = Buffer.concat([sig.subarray(0, at), sig.subarray(at + DIGEST_SIZE)]);
  return hmac(message, FP_KEY).equals(sig.subarray(at, at + DIGEST_SIZE));
}

function signedS1(scheme: 1 | 2): Buffer {
  const s1 = Buffer.concat([Buffer.from([0, 0, 0, 0, 1, 2, 3, 4]), randomBytes(HANDSHAKE_SIZE - 8)]);
  const at = digestOffset(s1, scheme);
  const message = Buffer.concat([s1.subarray(0, at), s1.subarray(at + DIGEST_SIZE)]);
  hmac(message, FMS_KEY).copy(s1, at);
  return s1;
}

function signedS2(scheme: 1 | 2, c1: Buffer): Buffer {
  const at = digestOffset(c1, scheme);
  const challenge = c1.subarray(at, at + DIGEST_SIZE);
  const random = randomBytes(HANDSHAKE_SIZE - DIGEST_SIZE);
  return Buffer.concat([random, hmac(random, hmac(challenge, FMS_KEY_FULL))]);
}

/** S0 + S1 + S2 for a client's C1. */
export function serverHandshake(c1: Buffer): Buffer {
  if (c1.length !== HANDSHAKE_SIZE) throw new Error('C1 must be 1536 bytes');
  const scheme = hasValidDigest(c1, 2) ? 2 : hasValidDigest(c1, 1) ? 1 : 0;
  const s0 = Buffer.from([RTMP_VERSION]);
  if (scheme === 0) return Buffer.concat([s0, c1, c1]);
  return Buffer.concat([s0, signedS1(scheme), signedS2(scheme, c1)]);
}
