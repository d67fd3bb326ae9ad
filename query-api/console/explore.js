// Events over a time range: filters as chips, facets whose values filter on click, a histogram
// whose bars zoom, the newest events, and the SQL that each part ran.

import { api } from './api.js';
import { histogram } from './chart.js';
import { TIME_RANGES, dataTable, errorBox, fmtTime, go, h, iso, link, route, section } from './ui.js';

const FACETS = ['user_name', 'verb', 'resource', 'namespace', 'response_code', 'user_agent', 'source_ip', 'cluster'];
const FILTERS = [...FACETS, 'subresource', 'name', 'audit_id', 'stage'];
const COLUMNS = ['event_time', 'user_name', 'verb', 'resource', 'subresource', 'namespace', 'name', 'response_code', 'source_ip', 'user_agent', 'exec_command'];

export async function render(root, params) {
  const p = { ...params };
  if (p.since === undefined) p.since = '24h';
  const without = (key) => { const next = { ...p }; delete next[key]; return next; };
  const form = h('form', { class: 'filters', id: 'explore-filters' },
    h('label', {}, 'Time', h('select', { name: 'since', id: 'e-since' },
      TIME_RANGES.map(([v, text]) => h('option', { value: v, selected: v === p.since }, text)),
      !TIME_RANGES.some(([v]) => v === p.since) ? h('option', { value: p.since, selected: true }, `from ${fmtTime(p.since)}`) : null)),
    h('label', { class: 'grow' }, 'Search', h('input', { type: 'search', name: 'q', id: 'e-q', value: p.q || '', placeholder: 'request URI, user, user agent' })),
    h('button', { type: 'submit' }, 'Apply'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    const next = { ...p, q: data.q, since: data.since };
    if (data.since !== p.since) delete next.until;
    go('explore', next);
  });
  form.querySelector('select').addEventListener('change', () => form.requestSubmit());
  const chips = h('p', { class: 'chips', id: 'explore-chips' },
    FILTERS.filter((k) => p[k]).map((k) => h('span', { class: 'chip' }, `${k} = `, h('strong', {}, p[k]), ' ', link('explore', without(k), '✕'))),
    p.until ? h('span', { class: 'chip' }, `until ${fmtTime(p.until)} `, link('explore', without('until'), '✕')) : null);
  const out = h('div', {}, h('p', { class: 'muted' }, 'Loading events…'));
  root.append(h('h1', {}, 'Explore events'), form, chips, out);

  const query = Object.fromEntries(Object.entries(p).filter(([k]) => [...FILTERS, 'since', 'until', 'q'].includes(k)));
  let data;
  try {
    data = await api.events(query);
  } catch (err) {
    out.replaceChildren(errorBox(err));
    return;
  }
  const facets = h('div', { class: 'facets', id: 'facets' }, FACETS.map((f) => h('div', { class: 'facet', dataset: { facet: f } },
    h('h3', {}, f),
    h('ol', {}, (data.facets[f] || []).map((v) => h('li', {},
      v.value === null ? h('span', { class: 'null' }, '∅') : link('explore', { ...p, [f]: v.value }, String(v.value)),
      h('span', { class: 'count' }, v.count)))))));
  const sqlLinks = h('details', { class: 'sql-shown', id: 'explore-sql' }, h('summary', {}, 'SQL these filters run'),
    h('pre', {}, data.sql), h('p', {}, h('a', { href: route('sql', { q: data.sql }), id: 'open-sql' }, 'Open in the SQL editor')),
    ...FACETS.filter((f) => data.facet_sql[f]).map((f) => h('div', {}, h('h3', {}, `facet ${f}`), h('pre', {}, data.facet_sql[f]), h('a', { href: route('sql', { q: data.facet_sql[f] }) }, 'Open'))));
  const table = data.events.length
    ? dataTable(COLUMNS, data.events, { pageSize: 50, render: (c, e) => (c === 'event_time' ? fmtTime(e.event_time) : undefined) })
    : h('p', { class: 'empty' }, 'No events match. Try a longer time range.');
  out.replaceChildren(
    section('Events over time', histogram(data.histogram, (from, to) => go('explore', { ...p, since: iso(from), until: iso(to) }))),
    h('div', { class: 'columns' },
      h('div', { class: 'side-col narrow' }, facets),
      h('div', { class: 'main-col' }, h('p', { class: 'muted' }, `Newest ${data.count} events${data.count >= data.limit ? ` (first ${data.limit})` : ''}.`), sqlLinks, h('div', { id: 'explore-events' }, table))));
}
