import * as c from './lib/contenders.mjs';
const which = process.argv[2] ?? 'ours';
const inflight = Number(process.argv[3] ?? 2);
const n = Number(process.argv[4] ?? 20000);
const opts = process.argv[5] ? JSON.parse(process.argv[5]) : {};
const v =
  which === 'raw'
    ? await c.rawFork(opts)
    : which === 'daemon'
      ? await c.oursDaemon(opts)
      : await c.oursLibrary(opts);
async function go(count) {
  let i = 0;
  const lanes = Array.from({ length: inflight }, async () => {
    while (i < count) {
      const k = i++;
      await v.call({ i: k });
    }
  });
  await Promise.all(lanes);
}
await go(2000);
const cpu0 = process.cpuUsage();
const t0 = performance.now();
await go(n);
const ms = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
console.log(
  `${which} inflight=${inflight} ${Math.round((n / ms) * 1000)}/s parentCPU=${Math.round(((cpu.user + cpu.system) / 1000 / ms) * 100)}%`,
);
await v.close();
