// The loaded rules with their alert counts over a time range and their examples, and the
// server's health from its own metrics.

import { api } from './api.js';
import { TIME_RANGES, dataTable, errorBox, go, h, kv, link, section, severityBadge } from './ui.js';

function bytes(n) {
  if (n === undefined || n === null) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Number(n);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${v.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function metric(m, name) {
  return m[name] === undefined ? 0 : m[name];
}

async function health(box) {
  let before = null;
  const draw = async () => {
    if (!document.body.contains(box)) return false;
    try {
      const s = await api.status();
      const m = s.metrics;
      const stored = metric(m, 'auditlake_events_stored_total');
      const rate = before ? ((stored - before.stored) / ((s.now_ms - before.at) / 1000)).toFixed(1) : '…';
      before = { stored, at: s.now_ms };
      const newest = s.newest_event_today ? new Date(s.newest_event_today).getTime() : null;
      box.replaceChildren(kv([
        ['ready', s.ready ? 'yes' : 'no'],
        ['events stored (since start)', stored], ['ingest rate (events/s)', rate],
        ['events received / rejected / duplicates', `${metric(m, 'auditlake_events_received_total')} / ${metric(m, 'auditlake_events_rejected_total')} / ${metric(m, 'auditlake_events_duplicate_total')}`],
        ['lag (newest event is)', newest ? `${Math.max(0, Math.round((s.now_ms - newest) / 1000))} s old` : 'no event in the last 24 h'],
        ['write-ahead log', bytes(s.bytes.wal)], ['lake: events', bytes(s.bytes.events)], ['lake: alerts', bytes(s.bytes.alerts)],
        ['lake files', metric(m, 'auditlake_lake_files')], ['queries (ok + refused + failed)', metric(m, 'auditlake_queries_total')],
        ['Kafka messages', metric(m, 'auditlake_kafka_messages_total')],
      ]));
    } catch (err) {
      box.replaceChildren(errorBox(err));
    }
    return true;
  };
  const tick = async () => { if (await draw()) setTimeout(tick, 5000); };
  tick();
}

export async function render(root, params) {
  const since = params.since ?? '7d';
  const range = h('select', { id: 'rules-since' }, TIME_RANGES.map(([v, t]) => h('option', { value: v, selected: v === since }, t)));
  range.addEventListener('change', () => go('rules', { since: range.value }));
  const healthBox = h('div', { id: 'health' }, h('p', { class: 'muted' }, 'Reading metrics…'));
  root.append(h('h1', {}, 'Rules and health'), section('Health', healthBox));
  health(healthBox);
  const [rules, summary] = await Promise.all([api.rules(), api.summary({ since })]);
  const counts = new Map();
  for (const r of summary.by_rule) counts.set(r.rule_id, (counts.get(r.rule_id) || 0) + r.count);
  const rows = rules.rules.map((r) => ({ ...r, alerts: counts.get(r.id) || 0, examples: (r.examples.fires || []).length + (r.examples.silent || []).length }));
  root.append(section(`${rules.count} rules`, h('p', {}, 'Alert counts over ', range),
    dataTable(['id', 'severity', 'category', 'alerts', 'enabled', 'examples', 'title'], rows, {
      pageSize: 200,
      render: (c, r) => (c === 'severity' ? severityBadge(r.severity)
        : c === 'alerts' ? (r.alerts ? link('alerts', { rule: r.id, since }, String(r.alerts)) : '0')
          : c === 'enabled' ? (r.enabled === false ? 'no' : 'yes')
            : c === 'id' ? h('details', {}, h('summary', {}, r.id), h('p', {}, r.description || ''), h('pre', {}, r.condition || ''),
              h('h4', {}, 'fires on'), h('pre', {}, JSON.stringify(r.examples.fires, null, 1)), h('h4', {}, 'silent on'), h('pre', {}, JSON.stringify(r.examples.silent, null, 1)))
              : undefined),
    })));
}
