import { admin } from './api.js';
import { mib } from './format.js';

/**
 * Clear cache, Clear history and Recycle: each asks first, shows the workers being replaced one at a
 * time (from the live stream's recycle events), and ends with the answer in words.
 */
export class Actions {
  constructor({ dialog, dialogText, status, onDone }) {
    this.dialog = dialog;
    this.dialogText = dialogText;
    this.status = status;
    this.onDone = onDone;
    this.running = undefined;
  }

  confirm(text) {
    return new Promise((resolve) => {
      this.dialogText.textContent = text;
      this.dialog.returnValue = '';
      this.dialog.addEventListener('close', () => resolve(this.dialog.returnValue === 'ok'), { once: true });
      this.dialog.showModal();
    });
  }

  /** A recycle event from the stream, while an action runs. */
  recycled(event) {
    const run = this.running;
    if (!run || event.reason !== 'admin') return;
    run.events.push(event);
    const of = run.expected > 0 ? ` of ${run.expected}` : '';
    this.show(
      `${run.label}: replaced ${run.events.length}${of} (${event.oldPid} → ${event.newPid ?? 'none'})…`,
    );
  }

  async run(command, args, { label, question, expected, light = false }) {
    if (this.running) return;
    if (!(await this.confirm(question))) return;
    this.running = { label, expected, events: [] };
    this.show(light ? `${label}: releasing in place…` : `${label}: replacing workers one at a time…`);
    try {
      const answer = await admin(command, args);
      await this.eventsOf(answer.recycled ?? []);
      this.show(`${label} done. ${words(command, answer, this.running.events)}`, 'done');
    } catch (error) {
      this.show(`${label} failed: ${error.message}`, 'failed');
    } finally {
      this.running = undefined;
      this.onDone(command);
    }
  }

  /**
   * The answer can overtake the last recycle events (the stream sends them in batches): wait briefly
   * until each replaced pid's event is in, so the words name every successor.
   */
  async eventsOf(recycled, timeoutMs = 2000) {
    const deadline = Date.now() + timeoutMs;
    const missing = () => recycled.some((pid) => !this.running.events.some((e) => e.oldPid === pid));
    while (missing() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  }

  show(text, state = 'running') {
    this.status.textContent = text;
    this.status.dataset.state = state;
  }
}

function change(label, c) {
  return `${label} ${mib(c.beforeMiB)} -> ${mib(c.afterMiB)} MiB (freed ${mib(c.freedMiB)} MiB)`;
}

/**
 * "Replaced 2 workers: 101 → 201, 102 → 202. RAM x -> y MiB, GPU x -> y MiB." The figures come from
 * the answer when the supervisor gives them; else they are added up from the recycle events seen.
 */
export function words(command, answer, events) {
  const recycled = answer.recycled ?? [];
  const parts = [];
  if (command === 'clear-history') parts.push(`Removed ${answer.removed} history records.`);
  if (answer.mode === 'light') {
    const pids = (answer.workers ?? []).map((w) => w.oldPid);
    parts.push(
      pids.length === 0
        ? `No worker holds ${answer.model}.`
        : `Released ${answer.model} in place on ${pids.length} worker${pids.length === 1 ? '' : 's'}: ${pids.join(', ')}.`,
    );
    const memory = [change('RAM', answer.ram)];
    if (answer.gpu) memory.push(change('GPU', answer.gpu));
    parts.push(`${memory.join(', ')}.`);
    return parts.join(' ');
  }
  const newPid = (old) =>
    answer.workers?.find((w) => w.oldPid === old)?.newPid ?? events.find((e) => e.oldPid === old)?.newPid;
  parts.push(
    recycled.length === 0
      ? 'No worker replaced.'
      : `Replaced ${recycled.length} worker${recycled.length === 1 ? '' : 's'}: ${recycled
          .map((old) => `${old} → ${newPid(old) ?? '?'}`)
          .join(', ')}.`,
  );
  const figures = answer.ram ? answer : fromEvents(events.filter((e) => recycled.includes(e.oldPid)));
  if (figures) {
    const memory = [change('RAM', figures.ram)];
    if (figures.gpu) memory.push(change('GPU', figures.gpu));
    parts.push(`${memory.join(', ')}.`);
  }
  return parts.join(' ');
}

function fromEvents(events) {
  const ram = events.filter((e) => e.rssBeforeMiB !== undefined && e.rssAfterMiB !== undefined);
  if (ram.length === 0) return undefined;
  const sum = (list, f) => list.reduce((total, e) => total + f(e), 0);
  const gpu = events.filter((e) => e.gpuBeforeMiB !== undefined && e.gpuFreedMiB !== undefined);
  return {
    ram: {
      beforeMiB: sum(ram, (e) => e.rssBeforeMiB),
      afterMiB: sum(ram, (e) => e.rssAfterMiB),
      freedMiB: sum(ram, (e) => e.rssFreedMiB ?? e.rssBeforeMiB - e.rssAfterMiB),
    },
    gpu:
      gpu.length === 0
        ? undefined
        : {
            beforeMiB: sum(gpu, (e) => e.gpuBeforeMiB),
            afterMiB: sum(gpu, (e) => e.gpuBaselineMiB ?? e.gpuBeforeMiB - e.gpuFreedMiB),
            freedMiB: sum(gpu, (e) => e.gpuFreedMiB),
          },
  };
}
