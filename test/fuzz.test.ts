// Property-based tests at every boundary where outside input is parsed: client messages, config layers,
// nvidia-smi output and tensors (socket frames: frame-codec.test.ts). Arbitrary input never throws past
// the boundary's typed result; valid input round-trips. The seed is fixed so a failure replays: fast-check prints the seed and
// path of the counterexample; rerun with FUZZ_SEED=<seed> (and FUZZ_RUNS=<n> for a longer search).
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import fc from 'fast-check';
import { InferenceSession, type Tensor } from 'onnxruntime-node';
import { ConfigError, loadConfig } from 'gpu-supervisor';
import { toJsonSafe, validateClientMessage } from '../dist/transport/session.js';
import { MAX_TIMER_MS as MAX_TIMEOUT_MS } from '../dist/config/schema.js';
import { ADMIN_COMMANDS, type ClientMessage } from '../dist/protocol/messages.js';
import { ENV_PREFIX, SETTINGS } from '../dist/config/settings.js';
import {
  classifySmiFailure,
  parseComputeAppsCsv,
  parseGpuCsv,
  type GpuDevice,
  type GpuProcess,
} from '../dist/probes/nvidia-smi-parse.js';
import { DTYPES, fromOutputs, toFeeds } from '../workers/tensor-codec.js';
import { ROOT } from './helpers.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20_261_129);
const RUNS = Number(process.env.FUZZ_RUNS ?? 200);
fc.configureGlobal({ seed: SEED, numRuns: RUNS });

/** Any value a client could send over 'advanced' IPC: bigints, typed arrays, maps, null prototypes. */
const anyValue = fc.anything({
  withBigInt: true,
  withBoxedValues: false,
  withDate: true,
  withMap: true,
  withSet: true,
  withNullPrototype: true,
  withObjectString: true,
  withSparseArray: true,
  withTypedArray: true,
  maxDepth: 4,
});

describe(`fuzz (seed ${SEED}, ${RUNS} runs; replay with FUZZ_SEED)`, () => {
  describe('validateClientMessage', () => {
    const checkResult = (raw: unknown): void => {
      const result = validateClientMessage(raw);
      if (result.ok) {
        assert.ok(['task', 'admin', 'cancel'].includes(result.message.type));
      } else {
        assert.equal(result.code, 'E_BAD_REQUEST');
        assert.equal(typeof result.message, 'string');
        assert.ok(result.message.length < 400, `an error message of ${result.message.length} chars`);
      }
    };

    test('arbitrary values never throw', () => {
      fc.assert(fc.property(anyValue, checkResult));
    });

    test('arbitrary JSON never throws', () => {
      fc.assert(fc.property(fc.jsonValue(), checkResult));
    });

    test('message-shaped objects with arbitrary fields never throw', () => {
      const shaped = fc.record(
        {
          type: fc.oneof(fc.constantFrom('task', 'admin', 'cancel'), anyValue),
          id: fc.oneof(fc.string({ maxLength: 300 }), anyValue),
          payload: anyValue,
          command: fc.oneof(fc.constantFrom(...ADMIN_COMMANDS), anyValue),
          args: anyValue,
          timeoutMs: fc.oneof(fc.double(), anyValue),
          priority: fc.oneof(fc.double(), anyValue),
        },
        { requiredKeys: [], noNullPrototype: true },
      );
      fc.assert(fc.property(shaped, checkResult));
    });

    test('cyclic and huge values are described, not serialized', () => {
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      for (const type of [cyclic, 10n, 'x'.repeat(1_000_000)]) {
        const result = validateClientMessage({ type, id: 'a' });
        assert.ok(!result.ok && result.message.length < 200, JSON.stringify(result).slice(0, 300));
      }
      const admin = validateClientMessage({ type: 'admin', id: 'a', command: cyclic });
      assert.ok(!admin.ok && /unknown admin command/.test(admin.message));
    });

    const id = fc.string({ minLength: 1, maxLength: 256 });
    const validMessage: fc.Arbitrary<ClientMessage> = fc.oneof(
      fc.record(
        {
          type: fc.constant('task' as const),
          id,
          payload: fc.jsonValue(),
          timeoutMs: fc.integer({ min: 1, max: MAX_TIMEOUT_MS }),
          priority: fc.integer({ min: -1000, max: 1000 }),
        },
        { requiredKeys: ['type', 'id', 'payload'], noNullPrototype: true },
      ),
      fc.record(
        {
          type: fc.constant('admin' as const),
          id,
          command: fc.constantFrom(...ADMIN_COMMANDS),
          args: fc.dictionary(fc.string(), fc.jsonValue()),
        },
        { requiredKeys: ['type', 'id', 'command'], noNullPrototype: true },
      ),
      fc.record({ type: fc.constant('cancel' as const), id }, { noNullPrototype: true }),
    );

    test('valid messages pass unchanged', () => {
      fc.assert(
        fc.property(validMessage, (message) => {
          const result = validateClientMessage(message);
          assert.ok(result.ok, result.ok ? '' : result.message);
          assert.deepStrictEqual(result.message, message);
        }),
      );
    });
  });

  describe('toJsonSafe', () => {
    test('arbitrary values never throw, and what it returns for acyclic values is valid JSON', () => {
      fc.assert(
        fc.property(anyValue, (value) => {
          const safe = toJsonSafe(value);
          JSON.stringify(safe, (_k, v: unknown) => {
            assert.notEqual(typeof v, 'bigint');
            assert.ok(!ArrayBuffer.isView(v), 'a typed array left in');
            return v;
          });
        }),
      );
    });

    test('cycles and deep nesting do not overflow the stack; "__proto__" keys are kept', () => {
      const cyclic: Record<string, unknown> = { a: new Float32Array([1]) };
      cyclic.self = cyclic;
      assert.doesNotThrow(() => toJsonSafe(cyclic));
      let deep: unknown = 1;
      for (let i = 0; i < 100_000; i++) deep = [deep];
      assert.doesNotThrow(() => toJsonSafe(deep));
      const own = toJsonSafe(JSON.parse('{"__proto__": {"x": 1}}', (_k, v: unknown) => v)) as object;
      assert.deepEqual(Object.keys(own), ['__proto__']);
      assert.equal(Object.getPrototypeOf(own), Object.prototype);
    });
  });

  describe('loadConfig', () => {
    const keys = SETTINGS.map((s) => s.key.split('.')[0]!);
    const topKeys = fc.constantFrom(
      ...new Set([...keys, 'models', 'cleanup', 'recycle', 'history', 'http', 'gpus', 'workerExecArgv']),
    );
    const options = fc.dictionary(fc.oneof(topKeys, fc.string()), anyValue, { maxKeys: 6 });
    const envNames = fc.constantFrom(
      ...SETTINGS.flatMap((s) => s.env.map((e) => ENV_PREFIX + e)),
      'LOG_LEVEL',
      `${ENV_PREFIX}CONFIG`,
    );
    const env = fc.dictionary(envNames, fc.string({ maxLength: 40 }), { maxKeys: 4 });
    const flags = SETTINGS.filter((s) => s.flag).map((s) => `--${s.flag}`);
    const argv = fc.array(
      fc.oneof(fc.constantFrom(...flags, '--config', '-h'), fc.string({ maxLength: 20 })),
      {
        maxLength: 6,
      },
    );

    test('arbitrary layers never throw anything but ConfigError', () => {
      fc.assert(
        fc.property(options, env, argv, (opts, envValues, args) => {
          try {
            loadConfig({ options: opts as never, env: envValues, argv: args, cwd: ROOT });
          } catch (error) {
            assert.ok(error instanceof ConfigError, `threw ${String(error)}`);
            assert.ok(!error.message.includes('\n'), 'a ConfigError is one line');
          }
        }),
        { numRuns: Math.min(RUNS, 150) },
      );
    });

    test('valid layers load with their values', () => {
      const valid = fc.record(
        {
          workers: fc.integer({ min: 1, max: 64 }),
          recycleEveryTasks: fc.integer({ min: 0, max: 1_000_000 }),
          taskTimeoutMs: fc.integer({ min: 1, max: MAX_TIMEOUT_MS }),
          maxQueue: fc.integer({ min: 1, max: 1_000_000 }),
          retries: fc.integer({ min: 0, max: 5 }),
          logLevel: fc.constantFrom('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'),
        },
        { requiredKeys: [], noNullPrototype: true },
      );
      fc.assert(
        fc.property(valid, fc.integer({ min: 1, max: 64 }), (opts, flagWorkers) => {
          const { config } = loadConfig({ options: opts, env: {}, argv: [], cwd: ROOT });
          for (const [key, value] of Object.entries(opts))
            assert.equal(config[key as keyof typeof config], value);
          // Flags win over library options.
          const flagged = loadConfig({ options: opts, env: {}, argv: ['--workers', String(flagWorkers)] });
          assert.equal(flagged.config.workers, flagWorkers);
        }),
        { numRuns: Math.min(RUNS, 100) },
      );
    });
  });

  describe('nvidia-smi parser', () => {
    const text = fc.oneof(
      fc.string({ maxLength: 300 }),
      fc
        .array(
          fc.array(
            fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('[N/A]', '12 MiB', '-1', 'GPU-x')),
            { maxLength: 8 },
          ),
          { maxLength: 5 },
        )
        .map((rows) => rows.map((r) => r.join(', ')).join('\n')),
    );

    test('arbitrary text never throws and gives typed items', () => {
      fc.assert(
        fc.property(text, (stdout) => {
          for (const parsed of [parseGpuCsv(stdout), parseComputeAppsCsv(stdout)]) {
            assert.ok(Array.isArray(parsed.items) && Array.isArray(parsed.skipped));
            assert.ok(parsed.skipped.every((s) => typeof s === 'string'));
          }
          for (const d of parseGpuCsv(stdout).items) {
            assert.ok(Number.isSafeInteger(d.index) && d.index >= 0);
            for (const n of [d.usedMiB, d.totalMiB, d.utilization])
              assert.ok(n === null || Number.isFinite(n));
          }
          for (const p of parseComputeAppsCsv(stdout).items)
            assert.ok(Number.isSafeInteger(p.pid) && p.pid > 0);
        }),
      );
    });

    test('arbitrary failure inputs classify without throwing', () => {
      fc.assert(
        fc.property(anyValue, (input) => {
          const failure = classifySmiFailure(input as never);
          assert.ok(['not-installed', 'no-driver', 'no-devices', 'timeout', 'failed'].includes(failure.kind));
          assert.equal(typeof failure.message, 'string');
        }),
      );
    });

    const metric = fc.oneof(fc.integer({ min: 0, max: 200_000 }), fc.constant(null));
    const uuid = fc.stringMatching(/^(GPU|MIG)-[0-9a-f]{8}-[0-9a-f]{4}$/);
    // Fields are trimmed, so a name keeps its inner ", " but not a blank before a comma (no driver prints one).
    const gpuName = fc.stringMatching(/^[A-Za-z0-9_-]{1,8}((, | )[A-Za-z0-9_-]{1,8}){0,4}$/);
    const device: fc.Arbitrary<GpuDevice> = fc.record(
      {
        index: fc.nat(64),
        uuid,
        name: gpuName,
        usedMiB: metric,
        totalMiB: metric,
        utilization: fc.oneof(fc.integer({ min: 0, max: 100 }), fc.constant(null)),
      },
      { noNullPrototype: true },
    );
    const app: fc.Arbitrary<GpuProcess> = fc.record(
      {
        gpuUuid: uuid,
        pid: fc.integer({ min: 1, max: 4_194_304 }),
        usedMiB: metric,
      },
      { noNullPrototype: true },
    );
    const cell = (n: number | null, placeholder: string): string => (n === null ? placeholder : String(n));
    const eol = fc.constantFrom('\n', '\r\n');

    test('generated --query-gpu CSV round-trips its numbers', () => {
      fc.assert(
        fc.property(
          fc.array(device, { maxLength: 8 }),
          eol,
          fc.constantFrom('[N/A]', '[Not Supported]'),
          (devices, nl, na) => {
            const stdout = devices
              .map((d) =>
                [
                  d.index,
                  d.uuid,
                  d.name,
                  cell(d.usedMiB, na),
                  cell(d.totalMiB, na),
                  cell(d.utilization, na),
                ].join(', '),
              )
              .join(nl);
            const parsed = parseGpuCsv(stdout + nl);
            assert.deepStrictEqual(parsed.skipped, []);
            assert.deepStrictEqual(parsed.items, devices);
          },
        ),
      );
    });

    test('generated --query-compute-apps CSV round-trips its numbers', () => {
      fc.assert(
        fc.property(fc.array(app, { maxLength: 8 }), eol, (apps, nl) => {
          const stdout = apps.map((a) => [a.gpuUuid, a.pid, cell(a.usedMiB, '[N/A]')].join(', ')).join(nl);
          const parsed = parseComputeAppsCsv(stdout);
          assert.deepStrictEqual(parsed.skipped, []);
          assert.deepStrictEqual(parsed.items, apps);
        }),
      );
    });
  });

  describe('tensor codec (against real ONNX Runtime sessions)', () => {
    let mlp: InferenceSession;
    let silero: InferenceSession;
    before(async () => {
      const options = { intraOpNumThreads: 1, interOpNumThreads: 1 };
      mlp = await InferenceSession.create(join(ROOT, 'models/mlp.onnx'), options);
      silero = await InferenceSession.create(join(ROOT, 'models/silero_vad.onnx'), options);
    });

    const expectTyped = (run: () => unknown): void => {
      try {
        run();
      } catch (error) {
        assert.equal((error as { code?: unknown }).code, 'E_BAD_REQUEST', `threw ${String(error)}`);
        assert.ok((error as Error).message.length < 400, 'an error message is bounded');
      }
    };

    const tensorish = fc.record(
      {
        type: fc.oneof(fc.constantFrom(...DTYPES), anyValue),
        dims: fc.oneof(
          fc.array(fc.oneof(fc.integer({ min: -3, max: 600 }), fc.double(), anyValue), { maxLength: 5 }),
          anyValue,
        ),
        data: fc.oneof(
          fc.float32Array({ maxLength: 1100 }),
          fc.array(fc.oneof(fc.double(), fc.bigInt(), fc.boolean(), anyValue), { maxLength: 20 }),
          fc.bigInt64Array({ maxLength: 4 }),
          fc.uint8Array({ maxLength: 8 }),
          anyValue,
        ),
      },
      { requiredKeys: [], noNullPrototype: true },
    );

    test('arbitrary inputs give feeds or E_BAD_REQUEST, nothing else', () => {
      const inputs = fc.oneof(
        anyValue,
        fc.dictionary(fc.constantFrom('x', 'input', 'sr', 'h', 'c', '__proto__', 'constructor'), tensorish),
      );
      fc.assert(
        fc.property(inputs, (value) => {
          expectTyped(() => toFeeds('mlp', mlp, value));
          expectTyped(() => toFeeds('silero-vad', silero, value));
        }),
      );
    });

    test('valid tensors round-trip through feeds and back', () => {
      const batch = fc.integer({ min: 1, max: 3 });
      const valid = batch.chain((b) =>
        fc.record(
          {
            x: fc.array(fc.float({ noNaN: true }), { minLength: b * 512, maxLength: b * 512 }),
            typed: fc.boolean(),
            b: fc.constant(b),
            sr: fc.oneof(
              fc.integer({ min: -(2 ** 53) + 1, max: 2 ** 53 - 1 }).map(BigInt),
              fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
            ),
          },
          { noNullPrototype: true },
        ),
      );
      fc.assert(
        fc.property(valid, ({ x, typed, b, sr }) => {
          const data = typed ? Float32Array.from(x) : x;
          const feeds = toFeeds('mlp', mlp, { x: { type: 'float32', dims: [b, 512], data } });
          const back = fromOutputs(feeds as Record<string, Tensor>);
          assert.deepStrictEqual(back.x!.dims, [b, 512]);
          assert.equal(back.x!.type, 'float32');
          assert.deepStrictEqual(Array.from(back.x!.data as Float32Array), Array.from(Float32Array.from(x)));
          const srData = typed
            ? new BigInt64Array([sr])
            : [Number.isSafeInteger(Number(sr)) ? Number(sr) : sr];
          const audio = { ...sileroLike(), sr: { type: 'int64', dims: [], data: srData } };
          const sFeeds = toFeeds('silero-vad', silero, audio);
          assert.equal((sFeeds.sr!.data as BigInt64Array)[0], sr);
        }),
        { numRuns: Math.min(RUNS, 60) },
      );
    });
  });
});

function sileroLike(): Record<string, unknown> {
  return {
    input: { type: 'float32', dims: [1, 512], data: new Float32Array(512) },
    h: { type: 'float32', dims: [2, 1, 64], data: new Float32Array(128) },
    c: { type: 'float32', dims: [2, 1, 64], data: new Float32Array(128) },
  };
}
