// The SQL editor: the tables' columns, a query run through the same read-only, bounded
// /v1/query, its result as a sortable, paged table, a chart when the columns fit one, and CSV.

import { api } from './api.js';
import { resultChart } from './chart.js';
import { dataTable, errorBox, go, h } from './ui.js';

const DEFAULT_SQL = "SELECT rule_id, count(*) AS alerts\nFROM alerts\nGROUP BY rule_id\nORDER BY alerts DESC\nLIMIT 20";
let schemaCache = null;

async function columns() {
  if (!schemaCache) {
    const r = await api.query("SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, ordinal_position");
    schemaCache = r.rows;
  }
  return schemaCache;
}

export async function render(root, params) {
  const editor = h('textarea', { id: 'sql-editor', spellcheck: 'false', rows: 10, 'aria-label': 'SQL' }, params.q || DEFAULT_SQL);
  const run = h('button', { type: 'button', id: 'sql-run', title: 'Ctrl+Enter' }, 'Run');
  const csv = h('button', { type: 'button', id: 'sql-csv' }, 'Download CSV');
  const status = h('p', { class: 'muted', id: 'sql-status', role: 'status' });
  const result = h('div', { id: 'sql-result' });
  const side = h('div', { class: 'side-col narrow schema', id: 'sql-columns' }, h('p', { class: 'muted' }, 'Loading columns…'));
  root.append(h('h1', {}, 'SQL'), h('div', { class: 'columns' }, side,
    h('div', { class: 'main-col' }, editor, h('p', {}, run, ' ', csv, ' ', h('span', { class: 'muted' }, 'Read-only; the server bounds time, memory and rows.')), status, result)));

  const submit = () => {
    const sql = editor.value.trim();
    if (sql === (params.q || '').trim() && params.q) execute(sql, status, result);
    else go('sql', { q: sql });
  };
  run.addEventListener('click', submit);
  editor.addEventListener('keydown', (e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); submit(); } });
  csv.addEventListener('click', async () => {
    try {
      const blob = await api.queryCsv(editor.value);
      const a = h('a', { href: URL.createObjectURL(blob), download: 'auditlake-query.csv' });
      document.body.append(a);
      a.click();
      a.remove();
    } catch (err) { status.replaceChildren(errorBox(err)); }
  });

  columns().then((cols) => {
    const tables = new Map();
    for (const c of cols) {
      if (!tables.has(c.table_name)) tables.set(c.table_name, []);
      tables.get(c.table_name).push(c);
    }
    side.replaceChildren(...[...tables].map(([t, cs]) => h('details', { open: t === 'events' || t === 'alerts' },
      h('summary', {}, t),
      h('ul', {}, cs.map((c) => h('li', {}, h('button', { type: 'button', class: 'link', title: c.data_type, onclick: () => insert(editor, c.column_name) }, c.column_name), ' ', h('span', { class: 'muted' }, c.data_type.replace(/\(.*/, ''))))))));
  }).catch((err) => side.replaceChildren(errorBox(err)));

  if (params.q) await execute(params.q, status, result);
}

function insert(editor, text) {
  const at = editor.selectionStart ?? editor.value.length;
  editor.setRangeText(text, at, editor.selectionEnd ?? at, 'end');
  editor.focus();
}

async function execute(sql, status, result) {
  status.textContent = 'Running…';
  result.replaceChildren();
  const started = performance.now();
  try {
    const r = await api.query(sql);
    const took = r.elapsed_ms ?? Math.round(performance.now() - started);
    status.textContent = `${r.row_count} row${r.row_count === 1 ? '' : 's'}${r.truncated ? ' (cut at the server\u2019s row limit)' : ''} in ${took} ms`;
    const names = r.columns.map((c) => c.name);
    const chart = resultChart(r.columns, r.rows);
    result.append(
      chart ? h('details', { open: true, class: 'chart' }, h('summary', {}, 'Chart'), chart) : null,
      r.rows.length ? dataTable(names, r.rows, { pageSize: 50 }) : h('p', { class: 'empty' }, 'No rows.'));
  } catch (err) {
    status.textContent = '';
    result.replaceChildren(errorBox(err));
  }
}
