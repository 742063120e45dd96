/**
 * The supervisor holds every client's tasks in flight under one id each, so clients must not share
 * ids. A socket connection's ids are held as `s<connection>:<id>` and the BullMQ consumer's as
 * `bullmq:<job>:<attempt>`. The fork parent's go in as it sent them, so logs and the history show
 * them unchanged, except one that could pass for another client's (it starts with `s<digits>:` or
 * `bullmq:`), which is held as `f:<id>`; so is one that starts with `f:`, which keeps the mapping
 * one-to-one. A fork parent can then neither take an id another client holds nor cancel its task.
 */
const SCOPED = /^(?:s\d+:|bullmq:|f:)/;

export const BULLMQ_ID_PREFIX = 'bullmq:';

export function forkTaskId(id: string): string {
  return SCOPED.test(id) ? `f:${id}` : id;
}

export function socketTaskId(connection: number, id: string): string {
  return `s${connection}:${id}`;
}
