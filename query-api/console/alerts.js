// The triage list: filters in the URL, counts per rule, a histogram that filters by time, and
// the newest alerts. Keys: `/` searches, `j`/`k` move, Enter opens.

import { api } from './api.js';
import { histogram } from './chart.js';
import { TIME_RANGES, cell, errorBox, fmtTime, go, h, iso, link, section, severityBadge, statusBadge } from './ui.js';

const SEVERITIES = ['critical', 'high', 'medium', 'low', 'info'];
const CATEGORIES = ['forbidden', 'credential-misuse', 'exec', 'rbac-escalation', 'workload', 'recon', 'persistence', 'other'];
const STATUSES = ['open', 'acknowledged', 'resolved', 'false_positive'];
const FILTERS = ['since', 'until', 'severity', 'category', 'rule', 'cluster', 'status', 'q', 'limit'];

function select(name, label, options, value) {
  return h('label', {}, label, h('select', { name, id: `f-${name}` },
    h('option', { value: '' }, 'any'),
    options.map(([v, text]) => h('option', { value: v, selected: v === value }, text))));
}

export async function render(root, params) {
  const filters = Object.fromEntries(FILTERS.filter((k) => params[k]).map((k) => [k, params[k]]));
  const form = h('form', { class: 'filters', id: 'alert-filters' },
    h('label', {}, 'Time', h('select', { name: 'since', id: 'f-since' },
      TIME_RANGES.map(([v, text]) => h('option', { value: v, selected: v === (params.since || '') }, text)),
      params.since && !TIME_RANGES.some(([v]) => v === params.since) ? h('option', { value: params.since, selected: true }, `from ${params.since}`) : null)),
    params.until ? h('input', { type: 'hidden', name: 'until', value: params.until }) : null,
    select('severity', 'Severity', SEVERITIES.map((s) => [s, s]), params.severity),
    select('category', 'Category', CATEGORIES.map((s) => [s, s]), params.category),
    select('status', 'Status', STATUSES.map((s) => [s, s.replace('_', ' ')]), params.status),
    h('label', {}, 'Rule', h('input', { name: 'rule', id: 'f-rule', value: params.rule || '', placeholder: 'rule id', size: 22 })),
    h('label', {}, 'Cluster', h('input', { name: 'cluster', id: 'f-cluster', value: params.cluster || '', size: 12 })),
    h('label', { class: 'grow' }, 'Search', h('input', { type: 'search', name: 'q', id: 'f-q', value: params.q || '', placeholder: 'message, user, resource  ( / )' })),
    h('button', { type: 'submit', id: 'apply' }, 'Apply'),
    Object.keys(filters).length ? link('alerts', {}, 'Clear') : null);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const next = Object.fromEntries([...new FormData(form)].filter(([, v]) => v));
    go('alerts', next);
  });
  for (const s of form.querySelectorAll('select')) s.addEventListener('change', () => form.requestSubmit());

  const summaryBox = h('div', { class: 'summary' }, h('p', { class: 'muted' }, 'Counting…'));
  const listBox = h('div', {}, h('p', { class: 'muted' }, 'Loading alerts…'));
  root.append(h('h1', {}, 'Alerts'), form, summaryBox, listBox);

  const [summary, list] = await Promise.allSettled([api.summary(filters), api.alerts(filters)]);
  if (summary.status === 'fulfilled') {
    const s = summary.value;
    const byRule = h('table', { class: 'data compact', id: 'by-rule' },
      h('thead', {}, h('tr', {}, h('th', {}, 'rule'), h('th', {}, 'severity'), h('th', {}, 'alerts'), h('th', {}, 'last'))),
      h('tbody', {}, s.by_rule.map((r) => h('tr', {},
        h('td', {}, link('alerts', { ...filters, rule: r.rule_id }, r.rule_title || r.rule_id)),
        h('td', {}, severityBadge(r.severity)),
        h('td', { class: 'num' }, r.count),
        h('td', {}, fmtTime(r.last))))));
    summaryBox.replaceChildren(
      section(`${s.total} alerts over time`, histogram(s.histogram, (from, to) => go('alerts', { ...filters, since: iso(from), until: iso(to) }))),
      section('By rule', byRule));
  } else {
    summaryBox.replaceChildren(errorBox(summary.reason));
  }
  if (list.status === 'rejected') {
    listBox.replaceChildren(errorBox(list.reason));
    return;
  }
  const { alerts, triage } = list.value;
  if (!alerts.length) {
    listBox.replaceChildren(h('p', { class: 'empty' }, 'No alerts match these filters.'));
    return;
  }
  const rows = alerts.map((a) => {
    const state = triage[a.alert_id];
    const href = `#/alert/${encodeURIComponent(a.alert_id)}?time=${encodeURIComponent(a.event_time)}`;
    return h('tr', { class: 'alert-row', tabindex: 0, dataset: { href, alertId: a.alert_id } },
      h('td', { class: 'time' }, fmtTime(a.event_time)),
      h('td', {}, severityBadge(a.severity)),
      h('td', {}, h('a', { href, class: 'rule-title' }, a.rule_title)),
      h('td', { class: 'message' }, cell(a.message, 160)),
      h('td', {}, cell(a.user_name, 48)),
      h('td', {}, cell(a.cluster, 24)),
      h('td', {}, statusBadge(state && state.status), state && state.assignee ? h('span', { class: 'muted' }, ` ${state.assignee}`) : null));
  });
  const table = h('table', { class: 'data', id: 'alert-list' },
    h('thead', {}, h('tr', {}, ['time', 'severity', 'rule', 'message', 'user', 'cluster', 'status'].map((c) => h('th', {}, c)))),
    h('tbody', {}, rows));
  listBox.replaceChildren(h('p', { class: 'muted' }, `Newest ${alerts.length} shown, newest first.`), table);
  keyboard(form, rows);
}

function keyboard(form, rows) {
  let at = -1;
  const focus = (i) => {
    at = Math.max(0, Math.min(rows.length - 1, i));
    rows[at].focus();
  };
  const onKey = (e) => {
    if (!document.body.contains(form)) {
      document.removeEventListener('keydown', onKey);
      return;
    }
    if (['INPUT', 'SELECT', 'TEXTAREA'].includes(e.target.tagName)) return;
    if (e.key === '/') { e.preventDefault(); form.querySelector('#f-q').focus(); }
    else if (e.key === 'j') focus(at + 1);
    else if (e.key === 'k') focus(at - 1);
    else if (e.key === 'Enter' && e.target.dataset && e.target.dataset.href) location.hash = e.target.dataset.href;
  };
  document.addEventListener('keydown', onKey);
  rows.forEach((r) => r.addEventListener('click', (e) => { if (e.target.tagName !== 'A' && !e.target.classList.contains('cut')) location.hash = r.dataset.href; }));
}
