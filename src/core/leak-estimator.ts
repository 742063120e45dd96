/**
 * Estimates how fast a worker's memory grows per task: a least-squares slope over its last readings
 * after cleanup (so a task's transient peak does not count). Small and allocation-free per sample.
 */
export class LeakEstimator {
  private readonly samples: number[] = [];

  constructor(private readonly window = 20) {}

  add(rssMiB: number): void {
    this.samples.push(rssMiB);
    if (this.samples.length > this.window) this.samples.shift();
  }

  /** MiB per task, or undefined until there are enough readings to say (at least 5). */
  get miBPerTask(): number | undefined {
    const n = this.samples.length;
    if (n < 5) return undefined;
    const meanX = (n - 1) / 2;
    const meanY = this.samples.reduce((a, b) => a + b, 0) / n;
    let num = 0;
    let den = 0;
    this.samples.forEach((y, x) => {
      num += (x - meanX) * (y - meanY);
      den += (x - meanX) ** 2;
    });
    return num / den;
  }
}
