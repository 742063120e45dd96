// A small seeded PRNG (mulberry32): the soak's fault plan and inputs replay exactly from a seed.
export function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    pick: (items) => items[Math.floor(next() * items.length)],
    chance: (p) => next() < p,
    text: (min, max) => {
      const n = min + Math.floor(next() * (max - min + 1));
      let s = '';
      for (let i = 0; i < n; i++) s += String.fromCharCode(32 + Math.floor(next() * 95));
      return s;
    },
  };
}
