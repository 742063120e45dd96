/**
 * ONNX Runtime's optimized-model cache (`sessionCache.dir`). The first start of a model writes the
 * graph ORT optimized (`optimizedModelFilePath`) into an entry keyed by the model file's content hash,
 * the ORT version, the execution providers, the session options and the CPU; later starts load that
 * entry with graph optimization disabled. The entry keeps its weights in a file of their own (ORT's
 * external initializers), which ORT maps instead of parsing and copying, and beside them the weights
 * its kernels pre-packed (MatMul's packed layout, for this CPU), so a later start skips the packing too:
 * those two, more than the skipped optimization, are what make a start with large weights cheaper
 * (64 MiB MLP, fresh process: session creation 113-133 ms from the model file, 66-73 ms from an entry
 * without the packed weights, 40-49 ms with them; the same outputs, bit for bit).
 *
 * An entry is a directory `<key>/` with model.onnx, weights.bin and meta.json, written under a temporary
 * name and renamed into place whole, so a concurrent worker sees all of it or none. An entry that does
 * not match its meta (truncated, another ORT version) or that ORT refuses is rebuilt; one ORT refuses in
 * both layouts is marked unusable and the model is loaded from its own file. Nothing here is fatal: a
 * cache that cannot be read or written serves the session from the model file.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { arch, cpus } from 'node:os';
import { join, resolve } from 'node:path';
import type { InferenceSession } from 'onnxruntime-node';
import type { Logger } from 'pino';
import type { SessionCacheOutcome } from 'gpu-supervisor/worker';

/** Bump when the entry layout or the key's recipe changes: old entries are then never looked up. */
const FORMAT = 2;
const MODEL_FILE = 'model.onnx';
const WEIGHTS_FILE = 'weights.bin';
const META_FILE = 'meta.json';
/** Initializers at least this large go to weights.bin (smaller ones stay inline in the graph). */
const EXTERNAL_MIN_BYTES = 1024;

/** external: weights in weights.bin (mapped on load); inline: one file (for graphs ORT cannot split). */
type Layout = 'external' | 'inline';

interface Meta {
  format: number;
  ortVersion: string;
  contentHash: string;
  layout: Layout;
  /** Byte sizes of the entry's files as written: a truncated file no longer matches. */
  sizes: Record<string, number>;
  /** ORT refused this model's entry in every layout: load the model file itself. */
  unusable?: string;
}

export interface CacheContext {
  dir: string;
  ortVersion: string;
  log: Logger;
  /** InferenceSession.create (passed in: the binding is loaded by the caller, and measured there). */
  create: (path: string, options: InferenceSession.SessionOptions) => Promise<InferenceSession>;
}

export interface CachedSession {
  session: InferenceSession;
  cache: SessionCacheOutcome;
}

/** Creates the session for `modelPath` through the cache in `context.dir`. */
export async function createCachedSession(
  context: CacheContext,
  modelPath: string,
  options: InferenceSession.SessionOptions,
): Promise<CachedSession> {
  let entry: string;
  let contentHash: string;
  try {
    contentHash = await contentHashOf(context.dir, modelPath);
    entry = join(context.dir, entryKey(contentHash, context.ortVersion, options));
  } catch (error) {
    // The model file itself cannot be read: let ORT say so, with its own message.
    context.log.debug({ err: error, path: modelPath }, 'session cache: cannot hash the model');
    return { session: await context.create(modelPath, options), cache: 'bypass' };
  }
  const meta = await readMeta(entry);
  if (meta === 'absent') return build(context, entry, contentHash, modelPath, options, 'external', 'miss');
  const problem =
    meta === 'unreadable' ? 'unreadable meta' : await mismatch(entry, meta, context, contentHash);
  if (problem || meta === 'unreadable') {
    context.log.warn({ entry, problem }, 'session cache: entry rebuilt');
    return build(context, entry, contentHash, modelPath, options, 'external', 'rebuilt');
  }
  if (meta.unusable) return { session: await context.create(modelPath, options), cache: 'bypass' };
  try {
    const session = await context.create(join(entry, MODEL_FILE), {
      ...options,
      graphOptimizationLevel: 'disabled',
      // The entry is ORT's own re-serialized graph: its warnings about it (duplicate initializers of
      // a graph it cannot reload) are ours to handle, below, not the operator's to read.
      logSeverityLevel: 3,
    });
    return { session, cache: 'hit' };
  } catch (error) {
    // Not ORT's verdict on the entry: another worker replaced it while this one opened it (its files
    // went between the check and the load), or the host is short of something for a moment. Served
    // from the model file this time; the entry is left to whoever is writing it.
    if (PASSING.test(String(error)) || GONE.test(String(error)) || !(await unchanged(entry, meta))) {
      context.log.debug({ entry, err: error }, 'session cache: entry changed or host short; model file');
      return { session: await context.create(modelPath, options), cache: 'bypass' };
    }
    // ORT refused the entry (damaged inside, or a graph it cannot reload in this layout): rebuild it,
    // in the other layout after a refused external one.
    const layout: Layout | undefined = meta.layout === 'external' ? 'inline' : undefined;
    context.log.warn({ entry, err: error, next: layout ?? 'model file' }, 'session cache: entry refused');
    if (layout) return build(context, entry, contentHash, modelPath, options, layout, 'rebuilt');
    if (await unchanged(entry, meta))
      await commit(context, entry, contentHash, 'inline', (meta) => ({
        ...meta,
        unusable: String(error),
      })).catch(() => undefined);
    return { session: await context.create(modelPath, options), cache: 'rebuilt' };
  }
}

/** A file of the entry vanished under the load (another worker was replacing it): not ORT's verdict. */
const GONE = /ENOENT|no such file|doesn't exist|does not exist/i;

/** Failures of the moment (the host's, not ORT's verdict on the options): never mark an entry unusable. */
const PASSING =
  /ENOSPC|no space|EDQUOT|quota|EROFS|read-only file system|EIO|input\/output error|EMFILE|too many open files|bad_alloc|out of memory|failed to allocate/i;

/** The entry is still the one `meta` describes, every file of it in place at its size. */
async function unchanged(entry: string, meta: Meta): Promise<boolean> {
  const now = await readMeta(entry);
  if (now === 'absent' || now === 'unreadable' || JSON.stringify(now) !== JSON.stringify(meta)) return false;
  for (const [file, size] of Object.entries(meta.sizes)) {
    const actual = await stat(join(entry, file)).then(
      (s) => s.size,
      () => -1,
    );
    if (actual !== size) return false;
  }
  return true;
}

/** The entry in place when another worker wrote it meanwhile and it serves as it is. */
async function usableEntry(
  context: CacheContext,
  entry: string,
  contentHash: string,
): Promise<Meta | undefined> {
  const meta = await readMeta(entry);
  if (meta === 'absent' || meta === 'unreadable' || meta.unusable) return undefined;
  return (await mismatch(entry, meta, context, contentHash)) === undefined ? meta : undefined;
}

/** Why an entry cannot be used as it is, or undefined when it can. */
async function mismatch(entry: string, meta: Meta, context: CacheContext, contentHash: string) {
  if (meta.format !== FORMAT) return `format ${meta.format}`;
  if (meta.ortVersion !== context.ortVersion) return `written by ORT ${meta.ortVersion}`;
  if (meta.contentHash !== contentHash) return 'another model';
  for (const [file, size] of Object.entries(meta.sizes)) {
    const actual = await stat(join(entry, file)).then(
      (s) => s.size,
      () => -1,
    );
    if (actual !== size) return `${file} is ${actual < 0 ? 'missing' : `${actual} bytes, not ${size}`}`;
  }
  return undefined;
}

/**
 * Creates the session from the model file with ORT writing its optimized graph into a fresh entry,
 * then puts the entry in place. The session served is the one just created (same graph).
 */
async function build(
  context: CacheContext,
  entry: string,
  contentHash: string,
  modelPath: string,
  options: InferenceSession.SessionOptions,
  layout: Layout,
  cache: 'miss' | 'rebuilt',
): Promise<CachedSession> {
  const temp = `${entry}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  let writing = true;
  try {
    await mkdir(temp, { recursive: true });
    await sweepOrphans(context.dir);
  } catch (error) {
    context.log.warn({ err: error, dir: context.dir }, 'session cache: cannot write; loading the model file');
    writing = false;
  }
  if (!writing) return { session: await context.create(modelPath, options), cache: 'bypass' };
  const extra: Record<string, unknown> = { ...(options.extra as Record<string, unknown> | undefined) };
  if (layout === 'external') {
    extra['session.optimized_model_external_initializers_file_name'] = WEIGHTS_FILE;
    extra['session.optimized_model_external_initializers_min_size_in_bytes'] = String(EXTERNAL_MIN_BYTES);
    extra['session.save_external_prepacked_constant_initializers'] = '1';
  }
  let session: InferenceSession;
  try {
    session = await context.create(modelPath, {
      ...options,
      extra,
      optimizedModelFilePath: join(temp, MODEL_FILE),
      // ORT warns on every save at level 'all' that the result is for this machine: it is (the key
      // holds the CPU), so only errors are shown for this one session.
      logSeverityLevel: 3,
    });
  } catch (error) {
    await rm(temp, { recursive: true, force: true }).catch(() => undefined);
    // The model may be fine and only the writing refused (an option this ORT build or provider does not
    // take): serve it from its own file, which throws the model's own error if it is the model.
    context.log.debug(
      { err: error, entry },
      'session cache: writing the entry failed; trying the model file',
    );
    const plain = await context.create(modelPath, options);
    context.log.warn({ err: error, entry }, 'session cache: cannot write the entry; loading the model file');
    // A refusal is for good (until ORT, the options or the model change): no later start tries again.
    // A full disk, a quota or memory running short is not: the next start tries to write once more.
    if (!PASSING.test(String(error)) && (await usableEntry(context, entry, contentHash)) === undefined)
      await commit(context, entry, contentHash, layout, (meta) => ({
        ...meta,
        unusable: String(error),
      })).catch(() => undefined);
    return { session: plain, cache: 'bypass' };
  }
  try {
    // On a miss, the first entry written stays: replacing a good one only opens a window in which
    // another worker finds its files gone.
    if (cache === 'miss' && (await usableEntry(context, entry, contentHash)) !== undefined)
      await rm(temp, { recursive: true, force: true });
    else await commit(context, entry, contentHash, layout, (meta) => meta, temp);
  } catch (error) {
    context.log.warn({ err: error, entry }, 'session cache: entry not written');
    await rm(temp, { recursive: true, force: true }).catch(() => undefined);
  }
  return { session, cache };
}

/** Writes meta.json into `temp` (or a fresh directory), then replaces `entry` with it. */
async function commit(
  context: CacheContext,
  entry: string,
  contentHash: string,
  layout: Layout,
  edit: (meta: Meta) => Meta,
  temp = `${entry}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`,
): Promise<void> {
  await mkdir(temp, { recursive: true });
  const sizes: Record<string, number> = {};
  for (const file of [MODEL_FILE, WEIGHTS_FILE]) {
    const size = await stat(join(temp, file)).then(
      (s) => s.size,
      () => undefined,
    );
    if (size !== undefined) sizes[file] = size;
  }
  const meta = edit({ format: FORMAT, ortVersion: context.ortVersion, contentHash, layout, sizes });
  await writeFile(join(temp, META_FILE), JSON.stringify(meta));
  // A directory cannot be renamed over a non-empty one: the old entry goes first. A reader that has it
  // open keeps its files (unlinked, not gone); one that comes between sees a miss and builds its own.
  await rm(entry, { recursive: true, force: true });
  try {
    await rename(temp, entry);
  } catch (error) {
    // Another worker put its entry in place first: keep that one.
    await rm(temp, { recursive: true, force: true });
    if (!['ENOTEMPTY', 'EEXIST'].includes((error as NodeJS.ErrnoException).code ?? '')) throw error;
  }
}

/** Temporary entries (and hash records) whose writer died mid-write: nobody will rename them. */
async function sweepOrphans(dir: string): Promise<void> {
  for (const where of [dir, join(dir, 'sources')]) {
    const names = await readdir(where).catch(() => []);
    for (const name of names) {
      const pid = /\.tmp-(\d+)-/.exec(name)?.[1];
      if (pid && !alive(Number(pid)))
        await rm(join(where, name), { recursive: true, force: true }).catch(() => undefined);
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readMeta(entry: string): Promise<Meta | 'absent' | 'unreadable'> {
  let text: string;
  try {
    text = await readFile(join(entry, META_FILE), 'utf8');
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'absent' : 'unreadable';
  }
  try {
    const meta = JSON.parse(text) as Meta;
    return typeof meta === 'object' && meta !== null && typeof meta.sizes === 'object' ? meta : 'unreadable';
  } catch {
    return 'unreadable';
  }
}

/** The entry's name: everything that changes what ORT would write. */
function entryKey(contentHash: string, ortVersion: string, options: InferenceSession.SessionOptions): string {
  const recipe = JSON.stringify({
    format: FORMAT,
    contentHash,
    ortVersion,
    // The optimized graph may hold kernels chosen for this CPU (ORT warns so at level 'all').
    cpu: `${arch()} ${cpus()[0]?.model ?? ''}`,
    options: canonical(options),
  });
  return createHash('sha256').update(recipe).digest('hex').slice(0, 32);
}

/** Object keys sorted at every level, so the same options always give the same key. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(
    Object.keys(value)
      .sort()
      .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
  );
}

interface SourceIndex {
  path: string;
  size: string;
  mtimeNs: string;
  ctimeNs: string;
  ino: string;
  dev: string;
  sha256: string;
}

/**
 * The model file's SHA-256. Hashing 64 MiB costs ~90 ms, most of what the cache saves, so the hash is
 * remembered per path with the file's size, inode and nanosecond mtime/ctime: any write or replacement
 * changes one of them, and the file is hashed again.
 */
async function contentHashOf(dir: string, modelPath: string): Promise<string> {
  const path = resolve(modelPath);
  const s = await stat(path, { bigint: true });
  const seen = {
    path,
    size: String(s.size),
    mtimeNs: String(s.mtimeNs),
    ctimeNs: String(s.ctimeNs),
    ino: String(s.ino),
    dev: String(s.dev),
  };
  const indexFile = join(
    dir,
    'sources',
    `${createHash('sha256').update(path).digest('hex').slice(0, 32)}.json`,
  );
  const known = await readFile(indexFile, 'utf8').then(
    (text) => JSON.parse(text) as SourceIndex,
    () => undefined,
  );
  if (known && (Object.keys(seen) as Array<keyof typeof seen>).every((k) => known[k] === seen[k]))
    return known.sha256;
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  const index: SourceIndex = { ...seen, sha256: hash.digest('hex') };
  try {
    await mkdir(join(dir, 'sources'), { recursive: true });
    const temp = `${indexFile}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    await writeFile(temp, JSON.stringify(index));
    await rename(temp, indexFile);
  } catch {
    // Not remembered: hashed again next time, nothing worse.
  }
  return index.sha256;
}
