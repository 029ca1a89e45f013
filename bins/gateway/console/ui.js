// Small DOM helpers. Text always goes in as text (never as HTML), so nothing the API
// returns can inject markup into the console.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

// Hangul (jamo, compatibility jamo, syllables): such text is marked `lang="ko"`, so
// screen readers and font selection treat it as Korean inside the English page.
const HANGUL = /[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]/;

function text(s) {
  if (!HANGUL.test(s)) return document.createTextNode(s);
  const span = document.createElement('span');
  span.lang = 'ko';
  span.textContent = s;
  return span;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : text(String(c)));
  }
}

// Times in the viewer's own time zone, named.
// (`dateStyle` cannot be combined with `timeZoneName`, hence the parts.)
const timeFormat = new Intl.DateTimeFormat(undefined, {
  year: 'numeric',
  month: 'short',
  day: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
  timeZoneName: 'short',
});

export function time(iso) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return document.createTextNode(String(iso));
  return h('time', { datetime: d.toISOString() }, timeFormat.format(d));
}

export function zoneName() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

export function badge(status) {
  return h('span', { class: `badge ${status}` }, status);
}

export function bytes(n) {
  if (n === undefined || n === null) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Number(n);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

// A table with a caption; `columns` are [header, (row) => cell].
export function table(caption, columns, rows, { empty = 'Nothing yet.', onRow } = {}) {
  if (!rows.length) return h('p', { class: 'muted' }, empty);
  return h(
    'table',
    {},
    h('caption', { class: 'muted', style: null }, caption),
    h('thead', {}, h('tr', {}, columns.map(([title]) => h('th', { scope: 'col' }, title)))),
    h(
      'tbody',
      {},
      rows.map((row) => {
        const tr = h('tr', {}, columns.map(([, cell]) => h('td', {}, cell(row))));
        if (onRow) onRow(tr, row);
        return tr;
      }),
    ),
  );
}

// What a section shows when a call fails: a 403 names the scope it needs.
export function failure(err) {
  if (err && err.status === 403 && err.scope) {
    return h(
      'div',
      { class: 'needs-scope', role: 'status' },
      h('p', {}, h('strong', {}, `This section needs the ${err.scope} scope.`)),
      h('p', { class: 'muted' }, err.message),
    );
  }
  return h('p', { class: 'error', role: 'alert' }, err?.message || String(err));
}

// Replaces a container's content.
export function show(container, ...children) {
  container.replaceChildren();
  append(container, children);
}

// The shared confirmation dialog: resolves true when the person confirms. `<dialog>`
// traps focus while open and Escape cancels.
export function confirmAction(text, okLabel = 'Confirm') {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-ok').textContent = okLabel;
  return new Promise((resolve) => {
    dialog.returnValue = '';
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.showModal();
  });
}

// A secret shown once, with a Copy button.
export function shownOnce(label, secret) {
  const status = h('span', { role: 'status', class: 'muted' });
  const copy = h('button', { type: 'button', class: 'secondary' }, 'Copy');
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(secret);
      status.textContent = 'Copied.';
    } catch {
      const range = document.createRange();
      range.selectNodeContents(value);
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      status.textContent = 'Selected: press Ctrl+C to copy.';
    }
  });
  const value = h('code', { class: 'secret', 'aria-label': label }, secret);
  return h(
    'div',
    { class: 'notice', role: 'region', 'aria-label': label },
    h('p', {}, h('strong', {}, `${label}: `), 'shown only this once. Copy it now.'),
    h('p', {}, value),
    h('p', {}, copy, ' ', status),
  );
}

export function field(labelText, input) {
  if (!input.id) input.id = `f-${Math.random().toString(36).slice(2, 9)}`;
  return h('div', { class: 'field' }, h('label', { for: input.id }, labelText), input);
}

export function select(name, options, value = '') {
  return h(
    'select',
    { name },
    options.map(([v, label]) => h('option', { value: v, selected: v === value }, label)),
  );
}

// Moves focus (and the view) to a detail's heading once it is shown.
export function focusHeading(container) {
  const h2 = container.querySelector('h2[tabindex]');
  if (h2) {
    h2.focus({ preventScroll: true });
    h2.scrollIntoView({ block: 'start' });
  }
}

export function heading(text) {
  return h('h1', { tabindex: '-1' }, text);
}
