import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ConfigError } from './errors.js';
import { resolvePoolSize } from './pool-size.js';
import { configSchema, type SupervisorConfig, type SupervisorOptions } from './schema.js';
import { ENV_PREFIX, PLAIN_ENV_ALIASES, SETTINGS, type Setting } from './settings.js';

/**
 * Configuration comes in layers, later ones winning: the embedded config/default.json, a config file
 * (--config or GPU_SUPERVISOR_CONFIG), library options, environment variables, then flags. Relative
 * paths are resolved against the file that declared them (or the cwd for env and flags), so a config
 * file can sit next to its models.
 */
export const DEFAULT_CONFIG_PATH = fileURLToPath(new URL('../../config/default.json', import.meta.url));

type Layer = { source: string; values: Record<string, unknown> };

export interface LoadInput {
  argv?: readonly string[];
  env?: NodeJS.ProcessEnv;
  options?: SupervisorOptions;
  cwd?: string;
}

export interface LoadedConfig {
  config: SupervisorConfig;
  /** Which layer set each top-level key: shown in errors and at debug level on start. */
  sources: Record<string, string>;
  help: boolean;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read config file ${path}: ${(error as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    // V8 quotes the file's text in its message: keep the error to one line.
    const reason = (error as Error).message.replace(/\s+/g, ' ').slice(0, 200);
    throw new ConfigError(`config file ${path} is not valid JSON: ${reason}`);
  }
  if (!isPlainObject(parsed)) throw new ConfigError(`config file ${path} must hold a JSON object`);
  return parsed;
}

/** Rewrites the path-valued settings of one layer to absolute paths, relative to `baseDir`. */
function resolveLayerPaths(values: Record<string, unknown>, baseDir: string): Record<string, unknown> {
  const out = { ...values };
  const toAbsolute = (p: unknown): unknown =>
    typeof p === 'string' && !isAbsolute(p) ? resolve(baseDir, p) : p;
  // "auto" and "off" are placements, not paths.
  const toPlacement = (p: unknown): unknown => (p === 'auto' || p === 'off' ? p : toAbsolute(p));
  if ('worker' in out) out.worker = toAbsolute(out.worker);
  if ('socket' in out) out.socket = toPlacement(out.socket);
  if ('adminTokenFile' in out) out.adminTokenFile = toAbsolute(out.adminTokenFile);
  if (isPlainObject(out.history) && 'path' in out.history) {
    out.history = { ...out.history, path: toPlacement(out.history.path) };
  }
  if (isPlainObject(out.sessionCache) && 'dir' in out.sessionCache) {
    out.sessionCache = { ...out.sessionCache, dir: toPlacement(out.sessionCache.dir) };
  }
  if (isPlainObject(out.models)) {
    const models: Record<string, unknown> = {};
    for (const [name, model] of Object.entries(out.models)) {
      models[name] =
        isPlainObject(model) && 'path' in model ? { ...model, path: toAbsolute(model.path) } : model;
    }
    out.models = models;
  }
  return out;
}

function mergeInto(target: Record<string, unknown>, source: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(source)) {
    if (skipped(key, value)) continue;
    const current = target[key];
    if (isPlainObject(value) && isPlainObject(current)) {
      const merged = { ...current };
      mergeInto(merged, value);
      target[key] = merged;
    } else {
      target[key] = value;
    }
  }
}

function parseSettingValue(setting: Setting, raw: string, origin: string): unknown {
  switch (setting.kind) {
    case 'int':
      if (!/^-?\d+$/.test(raw.trim())) {
        throw new ConfigError(
          `invalid config: ${setting.key} = ${JSON.stringify(raw)} (from ${origin}): expected an integer`,
        );
      }
      return Number(raw);
    case 'bool':
      if (!/^(true|false|1|0)$/i.test(raw.trim())) {
        throw new ConfigError(
          `invalid config: ${setting.key} = ${JSON.stringify(raw)} (from ${origin}): expected true or false`,
        );
      }
      return /^(true|1)$/i.test(raw.trim());
    case 'list':
      return raw
        .split(',')
        .map((item) => item.trim())
        .filter(Boolean);
    default:
      // LOG_LEVEL is a shared convention: accept INFO as well as info.
      return setting.key === 'logLevel' ? raw.toLowerCase() : raw;
  }
}

/** One setting's value as a config layer: `http.port` -> { http: { port } }. */
function settingValues(setting: Setting, value: unknown): Record<string, unknown> {
  const [parent, child] = setting.key.split('.') as [string, string | undefined];
  if (child === undefined) return { [parent]: value };
  // --redis / --queue name a BullMQ source: they imply its type.
  const implied = parent === 'source' ? { type: 'bullmq' } : {};
  return { [parent]: { ...implied, [child]: value } };
}

function parseFlags(argv: readonly string[]): {
  values: Record<string, string | boolean | undefined>;
  error?: string;
} {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    config: { type: 'string', short: 'c' },
    help: { type: 'boolean', short: 'h' },
  };
  for (const setting of SETTINGS) if (setting.flag) options[setting.flag] = { type: 'string' };
  // parseArgs refuses `--recycle-every -1` as ambiguous; join a negative number to its flag so the
  // value reaches validation and gets the usual one-line error.
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = argv[i + 1];
    if (arg.startsWith('--') && !arg.includes('=') && next !== undefined && /^-\d/.test(next)) {
      args.push(`${arg}=${next}`);
      i++;
    } else {
      args.push(arg);
    }
  }
  try {
    const { values } = parseArgs({ args, options, strict: true, allowPositionals: false });
    return { values: values as Record<string, string | boolean | undefined> };
  } catch (error) {
    // parseArgs explains over several lines; a ConfigError is one line.
    throw new ConfigError(`invalid command line: ${(error as Error).message.replace(/\s*\n\s*/g, ' ')}`);
  }
}

function envLayer(env: NodeJS.ProcessEnv, cwd: string): Layer[] {
  const layers: Layer[] = [];
  for (const setting of SETTINGS) {
    const names = [...setting.env.map((name) => ENV_PREFIX + name)];
    const alias = PLAIN_ENV_ALIASES[setting.key];
    if (alias) names.unshift(alias);
    for (const name of names) {
      const raw = env[name];
      if (raw === undefined || raw === '') continue;
      const value = parseSettingValue(setting, raw, `env ${name}`);
      layers.push({ source: `env ${name}`, values: resolveLayerPaths(settingValues(setting, value), cwd) });
    }
  }
  return layers;
}

/**
 * Keys a layer's merge skips: an undefined value sets nothing, and "__proto__" would set a prototype.
 * ("constructor" and "prototype" are plain keys of a plain object: a model may be named so.)
 */
function skipped(key: string, value: unknown): boolean {
  return value === undefined || key === '__proto__';
}

/** Values whose keys are the schema's: plain objects, nothing free-form (workerOptions), no cycles. */
function keyed(value: unknown, path: string): value is Record<string, unknown> {
  if (!isPlainObject(value) || path === 'workerOptions') return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Notes, for every key path a layer sets ("history", "history.flushMs"), that this layer set it last. */
function noteSources(
  values: Record<string, unknown>,
  source: string,
  into: Map<string, string>,
  at = '',
  seen = new Set<object>(),
): void {
  seen.add(values);
  for (const [key, value] of Object.entries(values)) {
    if (skipped(key, value)) continue;
    const path = at + key;
    into.set(path, source);
    if (keyed(value, path) && !seen.has(value)) noteSources(value, source, into, `${path}.`, seen);
  }
}

/** The layer that set a key path: the deepest part of it some layer set (a sibling's layer is not it). */
function sourceOf(path: readonly string[], sources: ReadonlyMap<string, string>): string {
  for (let length = path.length; length > 0; length--) {
    const source = sources.get(path.slice(0, length).join('.'));
    if (source !== undefined) return source;
  }
  return 'config';
}

function describeIssue(
  config: Record<string, unknown>,
  sources: ReadonlyMap<string, string>,
  issue: { path: PropertyKey[]; message: string; code?: string; keys?: string[] },
): string {
  const path = issue.path.map(String);
  if (issue.code === 'unrecognized_keys' && issue.keys) {
    const where = path.length ? `${path.join('.')}.` : '';
    const origin = sourceOf([...path, issue.keys[0] ?? ''], sources);
    return `invalid config: unknown key ${issue.keys.map((k) => where + k).join(', ')} (from ${origin})`;
  }
  let value: unknown = config;
  for (const key of path)
    value =
      isPlainObject(value) || Array.isArray(value) ? (value as Record<string, unknown>)[key] : undefined;
  const origin = sourceOf(path, sources);
  return `invalid config: ${path.join('.') || '(root)'} = ${showValue(value)} (from ${origin}): ${issue.message}`;
}

function showValue(value: unknown): string {
  try {
    return (
      JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)) ?? String(value)
    );
  } catch {
    return String(value);
  }
}

export function loadConfig(input: LoadInput = {}): LoadedConfig {
  const env = input.env ?? process.env;
  const cwd = input.cwd ?? process.cwd();
  const flags = parseFlags(input.argv ?? []).values;

  const layers: Layer[] = [
    {
      source: DEFAULT_CONFIG_PATH,
      values: resolveLayerPaths(readConfigFile(DEFAULT_CONFIG_PATH), dirname(DEFAULT_CONFIG_PATH)),
    },
  ];
  const { config: optionsConfigPath, ...options } = input.options ?? {};
  // An empty variable means unset, as for every other setting.
  const configPath = (flags.config as string | undefined) || env[`${ENV_PREFIX}CONFIG`] || optionsConfigPath;
  if (configPath) {
    const absolute = resolve(cwd, configPath);
    layers.push({ source: absolute, values: resolveLayerPaths(readConfigFile(absolute), dirname(absolute)) });
  }
  if (Object.keys(options).length > 0) {
    layers.push({
      source: 'library options',
      values: resolveLayerPaths(options as Record<string, unknown>, cwd),
    });
  }
  layers.push(...envLayer(env, cwd));
  for (const setting of SETTINGS) {
    const raw = setting.flag ? flags[setting.flag] : undefined;
    if (typeof raw !== 'string') continue;
    const origin = `--${setting.flag}`;
    layers.push({
      source: origin,
      values: resolveLayerPaths(settingValues(setting, parseSettingValue(setting, raw, origin)), cwd),
    });
  }

  const merged: Record<string, unknown> = {};
  const sources: Record<string, string> = {};
  /** Which layer (in order: defaults, file, env, flags) set each key last. */
  const rank: Record<string, number> = {};
  const pathSources = new Map<string, string>();
  for (const [index, layer] of layers.entries()) {
    mergeInto(merged, layer.values);
    noteSources(layer.values, layer.source, pathSources);
    for (const [key, value] of Object.entries(layer.values)) {
      if (skipped(key, value)) continue;
      sources[key] = layer.source;
      rank[key] = index;
    }
  }
  const result = configSchema.safeParse(merged);
  if (!result.success) {
    const first = result.error.issues[0];
    throw new ConfigError(first ? describeIssue(merged, pathSources, first as never) : 'invalid config');
  }
  const config = result.data;
  resolvePoolSize(config);
  // The token file wins over a token given in an earlier layer (an env token, then --admin-token-file).
  const fileIsLater = (rank.adminTokenFile ?? -1) > (rank.adminToken ?? -1);
  if (config.adminTokenFile !== null && (config.adminToken === null || fileIsLater)) {
    config.adminToken = readTokenFile(config.adminTokenFile, sources.adminTokenFile ?? 'config');
  }
  return { config, sources, help: flags.help === true };
}

function readTokenFile(path: string, origin: string): string {
  let token: string;
  try {
    token = readFileSync(path, 'utf8').trim();
  } catch (error) {
    throw new ConfigError(
      `invalid config: adminTokenFile = ${JSON.stringify(path)} (from ${origin}): ${(error as Error).message}`,
    );
  }
  if (token.length < 8) {
    throw new ConfigError(
      `invalid config: adminTokenFile = ${JSON.stringify(path)} (from ${origin}): the token needs at least 8 characters`,
    );
  }
  return token;
}

export function usage(): string {
  const lines = [
    'usage: node dist/supervisor.js [--config FILE] [options]',
    '',
    '  --config FILE                JSON config merged over config/default.json (env GPU_SUPERVISOR_CONFIG)',
  ];
  for (const s of SETTINGS) {
    if (!s.flag) {
      lines.push(`  ${'(env only)'.padEnd(29)}${s.help} (env ${ENV_PREFIX}${s.env[0]})`);
      continue;
    }
    lines.push(`  --${`${s.flag} VALUE`.padEnd(27)}${s.help} (env ${ENV_PREFIX}${s.env[0]})`);
  }
  lines.push('  --help                       this text');
  return lines.join('\n');
}
