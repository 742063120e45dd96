// Small formatters shared by the console's views.

export function mib(value) {
  return value === null || value === undefined ? '–' : Number(value).toFixed(1);
}

export function duration(ms) {
  if (ms === null || ms === undefined) return '–';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

export function clock(t) {
  return new Date(t).toLocaleTimeString([], { hour12: false });
}

/** Builds an element; children are strings (as text, never HTML) or nodes. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key.startsWith('data-')) node.setAttribute(key, String(value));
    else node[key] = value;
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ''));
  return node;
}

/** A <dl> of label/value pairs; a value may be { text, class }. */
export function facts(dl, pairs) {
  dl.replaceChildren(
    ...pairs.map(([label, value, key]) => {
      const v = typeof value === 'object' && value !== null ? value : { text: value };
      return el(
        'div',
        { 'data-key': key ?? label },
        el('dt', {}, label),
        el('dd', { class: v.class }, v.text),
      );
    }),
  );
}
