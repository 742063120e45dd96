/** Plain-text tables and numbers for humans; `--json` output bypasses all of this. */

export function table(headers: readonly string[], rows: ReadonlyArray<readonly unknown[]>): string {
  const cells = rows.map((row) => row.map(cell));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((row) => (row[i] ?? '').length)));
  const line = (row: readonly string[]): string =>
    row
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(headers), ...cells.map(line)].join('\n');
}

function cell(value: unknown): string {
  if (value === null || value === undefined) return '-';
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : value.toFixed(1);
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  return String(value);
}

export function duration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${(ms / 1000).toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  return h < 48 ? `${h}h ${m % 60}m` : `${Math.floor(h / 24)}d ${h % 24}h`;
}

export function mib(value: number | null | undefined): string {
  return typeof value === 'number' ? `${value.toFixed(1)} MiB` : '-';
}

/** A tensor's data, shortened: the first few values and the count. */
export function preview(data: ArrayLike<number | bigint | boolean>, max = 8): string {
  const shown = Array.from({ length: Math.min(max, data.length) }, (_, i) => {
    const v = data[i]!;
    return typeof v === 'number' && !Number.isInteger(v) ? v.toPrecision(6) : String(v);
  });
  return data.length > max ? `${shown.join(', ')}, ... (${data.length} values)` : shown.join(', ');
}
