// A node:test reporter that prints each test file's wall time, slowest first, after the run. Files run
// one at a time (--test-concurrency=1), so a file's time is from the previous file's last event to its
// own last event: process start, hooks and tests included, which a sum of test durations would miss.
export default async function* fileDurations(source) {
  const lastEventAt = new Map();
  const order = [];
  let previous = performance.now();
  const durations = new Map();
  for await (const event of source) {
    const file = event.data?.file;
    if (!file) continue;
    if (!lastEventAt.has(file)) order.push(file);
    lastEventAt.set(file, performance.now());
  }
  for (const file of order) {
    const at = lastEventAt.get(file);
    durations.set(file, at - previous);
    previous = at;
  }
  const rows = [...durations].sort((a, b) => b[1] - a[1]);
  const total = rows.reduce((sum, [, ms]) => sum + ms, 0);
  yield `# test file durations (wall, slowest first; ${(total / 1000).toFixed(1)} s in all)\n`;
  for (const [file, ms] of rows)
    yield `#   ${(ms / 1000).toFixed(1).padStart(7)} s  ${file.replace(`${process.cwd()}/`, '')}\n`;
}
