// Reads the bit-level syntax of H.264 parameter sets: fixed-width fields and
// Exp-Golomb codes, over the RBSP (emulation-prevention bytes removed).

export class BitReader {
  private bytePos = 0;
  private bitPos = 0;
  constructor(private readonly data: Uint8Array) {}

  readBit(): number {
    if (this.bytePos >= this.data.length) throw new RangeError('read past the end of the parameter set');
    const bit = (this.data[this.bytePos]! >> (7 - this.bitPos)) & 1;
    if (++this.bitPos === 8) {
      this.bitPos = 0;
      this.bytePos++;
    }
    return bit;
  }

  readBits(n: number): number {
    let value = 0;
    for (let i = 0; i < n; i++) value = value * 2 + this.readBit();
    return value;
  }

  /** ue(v): unsigned Exp-Golomb. */
  readUE(): number {
    let zeros = 0;
    while (this.readBit() === 0) {
      if (++zeros > 31) throw new RangeError('malformed Exp-Golomb code');
    }
    return 2 ** zeros - 1 + this.readBits(zeros);
  }

  /** se(v): signed Exp-Golomb. */
  readSE(): number {
    const k = this.readUE();
    return k % 2 === 1 ? (k + 1) / 2 : -(k / 2);
  }
}

/** Removes emulation-prevention bytes (00 00 03 → 00 00) to get the RBSP. */
export function toRbsp(nal: Uint8Array): Uint8Array {
  const out = new Uint8Array(nal.length);
  let n = 0;
  let zeros = 0;
  for (const byte of nal) {
    if (zeros >= 2 && byte === 3) {
      zeros = 0;
      continue;
    }
    out[n++] = byte;
    zeros = byte === 0 ? zeros + 1 : 0;
  }
  return out.subarray(0, n);
}
