// Inputs for the shipped models, and the 64 MiB MLP generated once into the OS temp dir.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
export const SILERO_PATH = join(root, 'models', 'silero_vad.onnx');

export function mlp64Path() {
  const path = join(tmpdir(), 'gpu-supervisor-bench-mlp64.onnx');
  if (!existsSync(path)) {
    execFileSync(
      process.execPath,
      [join(root, 'scripts', 'generate-mlp.mjs'), '--weights-mib', '64', '--out', path, '--if-missing'],
      {
        stdio: 'inherit',
      },
    );
  }
  return path;
}

/** One 32 ms frame of a 220 Hz tone at 16 kHz, with zero state: silero VAD's inputs. */
export function sileroFeeds() {
  const samples = 512;
  const audio = new Float32Array(samples).map((_, i) => 0.5 * Math.sin((2 * Math.PI * 220 * i) / 16000));
  return {
    input: { type: 'float32', dims: [1, samples], data: audio },
    sr: { type: 'int64', dims: [], data: new BigInt64Array([16000n]) },
    h: { type: 'float32', dims: [2, 1, 64], data: new Float32Array(128) },
    c: { type: 'float32', dims: [2, 1, 64], data: new Float32Array(128) },
  };
}

export function mlpFeeds(seed = 1) {
  return {
    x: { type: 'float32', dims: [1, 512], data: new Float32Array(512).map((_, i) => Math.sin(i + seed)) },
  };
}
