#!/usr/bin/env node
// Writes the generated MLP ONNX model (src/models/mlp.ts) to disk.
//
//   node scripts/generate-mlp.mjs [--weights-mib N] [--seed S] [--out FILE] [--if-missing]
//
// Runs after `tsc` has built src/ into dist/ (it is the last step of `npm run build`). The default output
// is models/mlp.onnx under the package root, found from this file's location so the result is the same
// whatever the current directory is. --out paths are taken relative to the current directory, like any CLI.
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, relative, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const packageRoot = fileURLToPath(new URL('..', import.meta.url));
const defaultOut = resolve(packageRoot, 'models', 'mlp.onnx');

const usage = `usage: node scripts/generate-mlp.mjs [--weights-mib N] [--seed S] [--out FILE] [--if-missing]
  --weights-mib N  layers of 1 MiB weights each (default 4)
  --seed S         weight PRNG seed, 0..4294967295 (default 1)
  --out FILE       output path (default ${relative(process.cwd(), defaultOut) || defaultOut})
  --if-missing     do nothing if FILE already exists with the expected size`;

/** Strict integer parsing: parseInt would accept "4MiB" or "1e3" silently. */
function parseInteger(name, text) {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text)) throw new RangeError(`--${name} must be a non-negative integer, got "${text}"`);
  return Number(text);
}

async function loadGenerator() {
  try {
    return await import('../dist/models/mlp.js');
  } catch (error) {
    if (error?.code === 'ERR_MODULE_NOT_FOUND') {
      throw new Error('dist/models/mlp.js not found: build first (npx tsc -p tsconfig.json)', {
        cause: error,
      });
    }
    throw error;
  }
}

async function fileSize(path) {
  try {
    return (await stat(path)).size;
  } catch (error) {
    if (error?.code === 'ENOENT') return undefined;
    throw error;
  }
}

/** tmp file + rename: a crash or a concurrent reader never sees a half-written model. */
async function writeAtomically(path, bytes) {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, path);
  } catch (error) {
    await rm(tmp, { force: true });
    throw error;
  }
}

const mib = (bytes) => `${(bytes / (1024 * 1024)).toFixed(2)} MiB`;

async function main() {
  const { values } = parseArgs({
    options: {
      'weights-mib': { type: 'string' },
      seed: { type: 'string' },
      out: { type: 'string' },
      'if-missing': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    console.log(usage);
    return;
  }
  const { buildMlpModel, mlpModelByteLength, resolveMlpOptions } = await loadGenerator();
  const options = resolveMlpOptions({
    weightsMiB: parseInteger('weights-mib', values['weights-mib']),
    seed: parseInteger('seed', values.seed),
  });
  const out = values.out === undefined ? defaultOut : resolve(values.out);
  const description = `${options.weightsMiB} layers, seed ${options.seed}`;

  if (values['if-missing']) {
    // The size identifies the layer count; the seed is not checked (it does not change the size).
    const size = await fileSize(out);
    if (size === mlpModelByteLength(options)) {
      console.log(`mlp model ${out}: ${mib(size)} (exists, skipped)`);
      return;
    }
  }
  const started = performance.now();
  const bytes = buildMlpModel(options);
  await writeAtomically(out, bytes);
  const seconds = ((performance.now() - started) / 1000).toFixed(2);
  console.log(`mlp model ${out}: ${mib(bytes.length)} (${description}, written in ${seconds} s)`);
}

main().catch((error) => {
  console.error(`generate-mlp: ${error instanceof Error ? error.message : String(error)}`);
  if (error instanceof TypeError || error instanceof RangeError) console.error(usage);
  process.exitCode = 1;
});
