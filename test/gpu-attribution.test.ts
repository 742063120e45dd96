// Attribution and reclaim decisions as tables: pure functions over parsed readings.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { detectAttribution, deviceUsedMiB, processUsedMiB, usageOf } from '../dist/probes/gpu-attribution.js';
import type { GpuSnapshot } from '../dist/probes/gpu-probe.js';

const A = 'GPU-a';
const B = 'GPU-b';
function snapshot(
  processes: Array<[string, number, number | null]>,
  used: Array<number | null> = [1000, 2000],
): GpuSnapshot {
  return {
    seq: 1,
    startedAt: 42,
    devices: used.map((usedMiB, index) => ({
      index,
      uuid: index === 0 ? A : B,
      name: 'x',
      usedMiB,
      totalMiB: 80_000,
      utilization: 0,
    })),
    processes: processes.map(([gpuUuid, pid, usedMiB]) => ({ gpuUuid, pid, usedMiB })),
  };
}

describe('detectAttribution', () => {
  const here = new Set([10, 11, 50]);
  const exists = (pid: number) => here.has(pid);
  const cases: Array<[string, GpuSnapshot, number[], 'process' | 'device']> = [
    ['a worker pid is listed', snapshot([[A, 10, 300]]), [10, 11], 'process'],
    ['no compute process at all', snapshot([]), [10, 11], 'process'],
    ['only other local programs use the GPU', snapshot([[A, 50, 900]]), [10, 11], 'process'],
    ['listed pids do not exist here (PID namespace)', snapshot([[A, 123456, 300]]), [10, 11], 'device'],
    [
      'one of ours listed among host pids',
      snapshot([
        [A, 123456, 300],
        [B, 11, 200],
      ]),
      [10, 11],
      'process',
    ],
  ];
  for (const [name, snap, workers, expected] of cases) {
    test(name, () => assert.equal(detectAttribution(snap, workers, exists), expected));
  }
});

describe('usage figures', () => {
  test('a process over several GPUs is summed; unlisted is 0; [N/A] is unknown', () => {
    const snap = snapshot([
      [A, 10, 300],
      [B, 10, 200],
      [A, 11, null],
    ]);
    assert.equal(processUsedMiB(snap, 10), 500);
    assert.equal(processUsedMiB(snap, 99), 0);
    assert.equal(processUsedMiB(snap, 11), undefined);
  });

  test('device figures by pinned GPU or over all; [N/A] is unknown', () => {
    assert.equal(deviceUsedMiB(snapshot([]), 1), 2000);
    assert.equal(deviceUsedMiB(snapshot([]), undefined), 3000);
    assert.equal(deviceUsedMiB(snapshot([], [null, 5]), 0), undefined);
    assert.equal(deviceUsedMiB(snapshot([]), 7), undefined);
  });

  test('usageOf carries the attribution and the reading time', () => {
    const snap = snapshot([[A, 10, 300]]);
    assert.deepEqual(usageOf(snap, 10, 0, 'process'), { miB: 300, attribution: 'process', at: 42 });
    assert.deepEqual(usageOf(snap, 10, 0, 'device'), { miB: 1000, attribution: 'device', at: 42 });
  });
});
