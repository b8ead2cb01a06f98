// Bounds how many uploads run at once across all streams.
export class Semaphore {
  private waiting: Array<() => void> = [];
  constructor(private available: number) {}

  async use<T>(work: () => Promise<T>): Promise<T> {
    if (this.available > 0) this.available--;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.available++;
    }
  }
}
