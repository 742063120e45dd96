import { clock, el } from './format.js';

const MAX_LINES = 200;

/** Cleanup and recycle events as they come, newest first, with the same fields as the pino lines. */
export class LogTail {
  constructor(list) {
    this.list = list;
  }

  add(t, msg, fields) {
    const pairs = Object.entries(fields)
      .filter(([key, value]) => value !== undefined && key !== 'type' && key !== 't' && key !== 'slot')
      .map(([key, value]) => `${key}=${typeof value === 'object' ? JSON.stringify(value) : value}`);
    this.list.prepend(el('li', { class: `log-${msg}` }, `${clock(t)} ${msg} ${pairs.join(' ')}`));
    while (this.list.childElementCount > MAX_LINES) this.list.lastElementChild.remove();
  }
}
