// Building the page from data. Every value reaches the DOM as a text node or an attribute set
// through the DOM API: nothing from the server is ever parsed as HTML.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') el.value = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// Only `#/...` links are built from data, so a value can never become a `javascript:` URL.
export function link(view, params, ...children) {
  return h('a', { href: route(view, params) }, ...children);
}

export function route(view, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, v);
  }
  const s = q.toString();
  return `#/${view}${s ? `?${s}` : ''}`;
}

export function parseRoute() {
  const hash = location.hash.replace(/^#\/?/, '');
  const [path, query = ''] = hash.split('?');
  const parts = path.split('/').map(decodeURIComponent);
  return { view: parts[0] || 'alerts', arg: parts.slice(1).join('/'), params: Object.fromEntries(new URLSearchParams(query)) };
}

export function go(view, params) {
  location.hash = route(view, params);
}

export function fmtTime(value) {
  if (value === null || value === undefined || value === '') return '';
  const d = typeof value === 'number' ? new Date(value) : new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return d.toISOString().replace('T', ' ').replace(/\.000Z$/, 'Z');
}

export function iso(ms) {
  return new Date(ms).toISOString().replace(/\.000Z$/, 'Z');
}

export function severityBadge(severity) {
  return h('span', { class: `sev sev-${/^[a-z]+$/.test(severity || '') ? severity : 'other'}` }, severity || '');
}

export function statusBadge(status) {
  const s = status || 'open';
  return h('span', { class: `status status-${s.replace(/[^a-z_]/g, '')}` }, s.replace('_', ' '));
}

// A long value shown cut, whole on click.
export function cell(value, max = 120) {
  if (value === null || value === undefined) return h('span', { class: 'null' }, '∅');
  const text = typeof value === 'object' ? JSON.stringify(value) : String(value);
  if (text.length <= max) return text;
  const shown = h('span', { class: 'cut', title: 'Show all' }, text.slice(0, max), '…');
  shown.addEventListener('click', () => { shown.textContent = text; shown.className = 'whole'; }, { once: true });
  return shown;
}

export function errorBox(e) {
  return h('div', { class: 'error', role: 'alert' }, e && e.message ? e.message : String(e));
}

export function section(title, ...children) {
  return h('section', { class: 'panel' }, h('h2', {}, title), ...children);
}

export function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== '' && !(Array.isArray(v) && !v.length))
    .map(([k, v]) => [h('dt', {}, k), h('dd', {}, v instanceof Node ? v : Array.isArray(v) ? v.join(', ') : String(v))]));
}

// A sortable, paged table. `columns` are names; `render(name, row)` may return a node.
export function dataTable(columns, rows, { pageSize = 50, render, rowClass, onRow } = {}) {
  let sortBy = null;
  let desc = false;
  let page = 0;
  const wrap = h('div', { class: 'table-wrap' });
  const draw = () => {
    const sorted = sortBy === null ? rows : [...rows].sort((a, b) => compare(a[sortBy], b[sortBy]) * (desc ? -1 : 1));
    const pages = Math.max(1, Math.ceil(sorted.length / pageSize));
    page = Math.min(page, pages - 1);
    const shown = sorted.slice(page * pageSize, (page + 1) * pageSize);
    const head = h('tr', {}, columns.map((c) => h('th', {
      class: 'sortable', tabindex: 0, 'aria-sort': sortBy === c ? (desc ? 'descending' : 'ascending') : 'none',
      onclick: () => { desc = sortBy === c ? !desc : false; sortBy = c; draw(); },
    }, c, sortBy === c ? (desc ? ' ▼' : ' ▲') : '')));
    const body = shown.map((row) => {
      const tr = h('tr', { class: rowClass ? rowClass(row) : undefined },
        columns.map((c) => h('td', {}, render ? render(c, row) ?? cell(row[c]) : cell(row[c]))));
      if (onRow) tr.addEventListener('click', (e) => { if (e.target.tagName !== 'A') onRow(row); });
      return tr;
    });
    const pager = pages > 1 ? h('div', { class: 'pager' },
      h('button', { type: 'button', disabled: page === 0, onclick: () => { page -= 1; draw(); } }, '‹ Previous'),
      ` Page ${page + 1} of ${pages} `,
      h('button', { type: 'button', disabled: page >= pages - 1, onclick: () => { page += 1; draw(); } }, 'Next ›')) : null;
    wrap.replaceChildren(...[h('table', { class: 'data' }, h('thead', {}, head), h('tbody', {}, body)), pager].filter(Boolean));
  };
  draw();
  return wrap;
}

function compare(a, b) {
  if (a === b) return 0;
  if (a === null || a === undefined) return 1;
  if (b === null || b === undefined) return -1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return String(a).localeCompare(String(b));
}

export const TIME_RANGES = [['15m', 'last 15 minutes'], ['1h', 'last hour'], ['24h', 'last 24 hours'], ['7d', 'last 7 days'], ['30d', 'last 30 days'], ['', 'all time']];
