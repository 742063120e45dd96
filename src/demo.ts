/**
 * `npm run demo`: forks the supervisor on the embedded defaults (2 workers, Silero VAD), streams a
 * generated audio signal through it, and shows what the supervisor does meanwhile: per-task cleanup
 * with measured RSS, and recycling every 50 tasks. Prints a short human summary; the supervisor's own
 * JSON log lines are parsed, not echoed.
 */
import { createInterface } from 'node:readline';
import { SupervisorClient } from './client/client.js';

const SAMPLE_RATE = 16_000;
const WINDOW = 512; // 32 ms, Silero VAD's window at 16 kHz
const SECONDS = 8;
const STREAMS = 4;
const RECYCLE_EVERY = 100;

/** Speech-like bursts (harmonics under a syllable envelope) between stretches of faint noise. */
function syntheticAudio(seconds: number, seed: number): Float32Array {
  const audio = new Float32Array(seconds * SAMPLE_RATE);
  let state = seed;
  const noise = (): number => ((state = (state * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5) * 0.02;
  for (let i = 0; i < audio.length; i++) {
    const t = i / SAMPLE_RATE;
    const speaking = Math.floor(t) % 2 === 0;
    let sample = noise();
    if (speaking) {
      const pitch = 120 + 30 * Math.sin(2 * Math.PI * 0.5 * t);
      const envelope = 0.5 * (1 - Math.cos(2 * Math.PI * 4 * t));
      for (let k = 1; k <= 8; k++) sample += (envelope * 0.3 * Math.sin(2 * Math.PI * pitch * k * t)) / k;
    }
    audio[i] = sample;
  }
  return audio;
}

interface Summary {
  cleanups: number;
  cleanupFreedMiB: number;
  recycles: string[];
}

function watchLogs(client: SupervisorClient, summary: Summary): void {
  if (!client.stdout) return;
  createInterface({ input: client.stdout }).on('line', (line) => {
    let event: Record<string, unknown>;
    try {
      event = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    if (event.msg === 'cleanup') {
      summary.cleanups++;
      summary.cleanupFreedMiB += Number(event.freedMiB) || 0;
    } else if (event.msg === 'recycle') {
      const text =
        `recycle (${String(event.reason)}): worker ${String(event.oldPid)} -> ${String(event.newPid)} after ` +
        `${String(event.tasksDone)} tasks, RSS ${String(event.rssBeforeMiB)} -> ${String(event.rssAfterMiB)} MiB ` +
        `(freed ${String(event.rssFreedMiB)} MiB) in ${String(event.ms)} ms`;
      summary.recycles.push(text);
      console.log(`  ${text}`);
    } else if (typeof event.level === 'number' && event.level >= 40) {
      console.log(`  [supervisor ${event.level >= 50 ? 'error' : 'warn'}] ${String(event.msg)}`);
    }
  });
}

async function runStream(client: SupervisorClient, audio: Float32Array): Promise<number[]> {
  let h: Float32Array<ArrayBufferLike> = new Float32Array(2 * 64);
  let c: Float32Array<ArrayBufferLike> = new Float32Array(2 * 64);
  const probabilities: number[] = [];
  for (let offset = 0; offset + WINDOW <= audio.length; offset += WINDOW) {
    const value = (await client.run({
      model: 'silero-vad',
      inputs: {
        input: { type: 'float32', dims: [1, WINDOW], data: audio.subarray(offset, offset + WINDOW) },
        sr: { type: 'int64', dims: [], data: new BigInt64Array([BigInt(SAMPLE_RATE)]) },
        h: { type: 'float32', dims: [2, 1, 64], data: h },
        c: { type: 'float32', dims: [2, 1, 64], data: c },
      },
    })) as { outputs: Record<string, { data: Float32Array }> };
    probabilities.push(value.outputs.output!.data[0]!);
    h = value.outputs.hn!.data;
    c = value.outputs.cn!.data;
  }
  return probabilities;
}

function timeline(probabilities: number[]): string {
  const perSecond = SAMPLE_RATE / WINDOW;
  const marks: string[] = [];
  for (let s = 0; s * perSecond < probabilities.length; s++) {
    const slice = probabilities.slice(Math.round(s * perSecond), Math.round((s + 1) * perSecond));
    const mean = slice.reduce((a, b) => a + b, 0) / slice.length;
    marks.push(mean > 0.5 ? '#' : mean > 0.2 ? '+' : '.');
  }
  return marks.join('');
}

async function main(): Promise<void> {
  console.log(
    `gpu-supervisor demo: ${STREAMS} audio streams x ${SECONDS} s through Silero VAD, recycle every ${RECYCLE_EVERY} tasks`,
  );
  const started = performance.now();
  const client = await SupervisorClient.fork({ recycleEvery: RECYCLE_EVERY, stdio: 'pipe' });
  console.log(
    `supervisor ${client.pid} ready with ${client.workers} workers in ${Math.round(performance.now() - started)} ms`,
  );
  const summary: Summary = { cleanups: 0, cleanupFreedMiB: 0, recycles: [] };
  watchLogs(client, summary);

  const streams = Array.from({ length: STREAMS }, (_, i) => syntheticAudio(SECONDS, i + 1));
  const runStarted = performance.now();
  const results = await Promise.all(streams.map((audio) => runStream(client, audio)));
  const seconds = (performance.now() - runStarted) / 1000;
  const tasks = results.reduce((n, r) => n + r.length, 0);

  console.log(
    '\nspeech per second of audio (# speech, + maybe, . silence); the signal alternates 1 s bursts and 1 s noise:',
  );
  results.forEach((p, i) => console.log(`  stream ${i + 1}: ${timeline(p)}`));
  const stats = await client.stats();
  console.log(
    `\n${tasks} tasks in ${seconds.toFixed(2)} s = ${Math.round(tasks / seconds)} tasks/s (${(tasks * WINDOW) / SAMPLE_RATE / seconds > 1 ? `${((tasks * WINDOW) / SAMPLE_RATE / seconds).toFixed(0)}x real time` : 'slower than real time'})`,
  );
  console.log(
    `cleanups: ${summary.cleanups} light cleanups logged, net RSS freed ${summary.cleanupFreedMiB.toFixed(1)} MiB`,
  );
  console.log(
    `recycles: ${stats.totals.recycles}, RSS freed by recycling and cleanup: ${stats.totals.freedMiB} MiB`,
  );
  for (const w of stats.workers) {
    const rss = w.rssMiB === undefined ? '' : `, RSS ${w.rssMiB} MiB`;
    console.log(`  worker ${w.pid}: ${w.state}, ${w.tasksDone} tasks since start${rss}`);
  }
  const cleared = (await client.admin('clear-cache')) as { recycled: number[] };
  console.log(`admin clear-cache: recycled workers ${cleared.recycled.join(', ')} one at a time`);
  await client.close();
  console.log(`supervisor stopped; demo took ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
