/**
 * Estimates how fast a worker's memory grows per task: a least-squares slope over its last readings
 * after cleanup (so a task's transient peak does not count). Small and allocation-free per sample.
 */
export class LeakEstimator {
  private readonly samples: number[] = [];
  /** Tasks done at each sample: a cleanup may cover several tasks (cleanup.everyTasks). */
  private readonly at: number[] = [];
  private tasks = 0;

  constructor(private readonly window = 20) {}

  /** A reading after a cleanup that covered `tasks` tasks. */
  add(rssMiB: number, tasks = 1): void {
    this.tasks += Math.max(1, tasks);
    this.samples.push(rssMiB);
    this.at.push(this.tasks);
    if (this.samples.length > this.window) {
      this.samples.shift();
      this.at.shift();
    }
  }

  /**
   * MiB per task between the last two readings, or undefined before the second: too noisy to recycle
   * on, early enough to decide how often to measure near a ceiling (a steady leak shows from the second).
   */
  get lastStepMiBPerTask(): number | undefined {
    const n = this.samples.length;
    if (n < 2) return undefined;
    return (this.samples[n - 1]! - this.samples[n - 2]!) / (this.at[n - 1]! - this.at[n - 2]!);
  }

  /** MiB per task, or undefined until there are enough readings to say (at least 5). */
  get miBPerTask(): number | undefined {
    const n = this.samples.length;
    if (n < 5) return undefined;
    const meanX = this.at.reduce((a, b) => a + b, 0) / n;
    const meanY = this.samples.reduce((a, b) => a + b, 0) / n;
    let num = 0;
    let den = 0;
    this.samples.forEach((y, i) => {
      const x = this.at[i]!;
      num += (x - meanX) * (y - meanY);
      den += (x - meanX) ** 2;
    });
    return num / den;
  }
}
