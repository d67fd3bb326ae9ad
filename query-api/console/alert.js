// One alert: its rule, the event rendered for a person, the evidence, the identity's timeline
// around it with pivots, and its triage.

import { api } from './api.js';
import { cell, dataTable, errorBox, fmtTime, go, h, kv, link, section, severityBadge, statusBadge } from './ui.js';

const STATUSES = ['open', 'acknowledged', 'resolved', 'false_positive'];
const EXCEPTION_FIELDS = ['user_name', 'source_ip', 'user_agent', 'verb', 'resource', 'subresource', 'namespace', 'name', 'cluster'];
const TIMELINE = ['event_time', 'verb', 'resource', 'subresource', 'namespace', 'name', 'response_code', 'source_ip', 'user_agent', 'exec_command'];

function mitreLink(id) {
  if (!/^T\d{4}(\.\d{3})?$/.test(id)) return h('span', {}, id);
  return h('a', { href: `https://attack.mitre.org/techniques/${id.replace('.', '/')}/`, rel: 'noopener noreferrer', target: '_blank' }, id);
}

function body(title, value) {
  if (value === null || value === undefined || value === '') return null;
  let text = value;
  try { text = JSON.stringify(JSON.parse(value), null, 2); } catch (_) { /* shown as stored */ }
  return h('details', { class: 'body' }, h('summary', {}, title), h('pre', {}, text));
}

function yesNo(v) {
  return v === true ? 'yes' : v === false ? 'no' : null;
}

function renderEvent(e) {
  const object = [e.namespace, e.resource && `${e.resource}${e.subresource ? `/${e.subresource}` : ''}`, e.name].filter(Boolean).join(' / ');
  const pod = [
    ['images', e.pod_images], ['privileged', yesNo(e.pod_privileged)], ['host network', yesNo(e.pod_host_network)],
    ['host PID', yesNo(e.pod_host_pid)], ['host IPC', yesNo(e.pod_host_ipc)], ['host paths', e.pod_host_paths],
    ['capabilities added', e.pod_capabilities_added], ['runs as root', yesNo(e.pod_run_as_root)],
    ['privilege escalation', yesNo(e.pod_allow_privilege_escalation)], ['service account', e.pod_service_account],
  ];
  const role = [['role', e.role_ref], ['subjects', e.subjects], ['verbs', e.rule_verbs], ['resources', e.rule_resources]];
  const hasAny = (pairs) => pairs.some(([, v]) => v !== null && v !== undefined && !(Array.isArray(v) && !v.length));
  return h('div', { class: 'event', id: 'event' },
    kv([
      ['who', e.user_name], ['groups', e.user_groups], ['impersonating', e.impersonated_user],
      ['from', e.source_ip], ['all source IPs', e.source_ips && e.source_ips.length > 1 ? e.source_ips : null],
      ['user agent', e.user_agent], ['what', `${e.verb || ''} ${e.request_uri || ''}`.trim()], ['object', object],
      ['API group', e.api_group], ['cluster', e.cluster], ['time', fmtTime(e.event_time)], ['stage', e.stage],
      ['response', [e.response_code, e.response_status, e.response_reason].filter((v) => v !== null && v !== undefined).join(' ')],
      ['message', e.response_message], ['decision', e.decision], ['reason', e.decision_reason],
      ['audit ID', e.audit_id],
    ]),
    e.exec_command ? h('div', { class: 'exec' }, h('h3', {}, 'Command'), h('pre', { id: 'exec-command' }, e.exec_command)) : null,
    hasAny(pod) ? h('div', {}, h('h3', {}, 'Pod'), kv(pod)) : null,
    hasAny(role) ? h('div', {}, h('h3', {}, 'Role and binding'), kv(role)) : null,
    body('Request body', e.request_object), body('Response body', e.response_object),
    e.annotations ? body('Annotations', typeof e.annotations === 'string' ? e.annotations : JSON.stringify(e.annotations)) : null);
}

function pivots(a, context) {
  const around = { since: new Date(context.since_ms).toISOString(), until: new Date(context.until_ms).toISOString() };
  const out = [];
  if (a.user_name) out.push(link('explore', { ...around, user_name: a.user_name }, 'same user'));
  if (a.source_ip) out.push(link('explore', { ...around, source_ip: a.source_ip }, 'same source IP'));
  if (a.name && a.resource !== 'pods') out.push(link('explore', { ...around, namespace: a.namespace, resource: a.resource, name: a.name }, 'same object'));
  if (a.resource === 'pods' && a.name) out.push(link('explore', { ...around, namespace: a.namespace, resource: 'pods', name: a.name }, 'same pod'));
  if (a.user_agent) out.push(link('explore', { ...around, user_agent: a.user_agent }, 'same user agent'));
  return h('p', { class: 'pivots', id: 'pivots' }, 'Pivot to: ', out.flatMap((l, i) => (i ? [' · ', l] : [l])));
}

function triagePanel(id, params, data) {
  const state = data.triage || { status: 'open' };
  const status = h('select', { name: 'status', id: 'triage-status' }, STATUSES.map((s) => h('option', { value: s, selected: s === state.status }, s.replace('_', ' '))));
  const assignee = h('input', { name: 'assignee', id: 'triage-assignee', value: state.assignee || '', placeholder: 'assignee', maxlength: 200 });
  const note = h('textarea', { name: 'note', id: 'triage-note', rows: 3, placeholder: 'note', maxlength: 4000 }, state.note || '');
  const message = h('p', { class: 'muted', id: 'triage-message', role: 'status' });
  const history = h('ol', { class: 'history', id: 'triage-history' },
    (data.history || []).map((c) => h('li', {}, `${fmtTime(new Date(c.changed_at / 1000))} ${c.changed_by}: ${c.status.replace('_', ' ')}`,
      c.assignee ? ` → ${c.assignee}` : '', c.note ? h('q', {}, c.note) : null)));
  const form = h('form', { class: 'triage', id: 'triage-form' },
    h('label', {}, 'Status ', status), h('label', {}, 'Assignee ', assignee), h('label', { class: 'wide' }, 'Note ', note),
    h('button', { type: 'submit', id: 'triage-save' }, 'Save'), message);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    message.textContent = 'Saving…';
    try {
      const r = await api.triage(id, { time: params.time }, { status: status.value, assignee: assignee.value, note: note.value });
      message.textContent = `Saved: ${r.triage.status.replace('_', ' ')} by ${r.triage.changed_by}.`;
      history.replaceChildren(...r.history.map((c) => h('li', {}, `${fmtTime(new Date(c.changed_at / 1000))} ${c.changed_by}: ${c.status.replace('_', ' ')}`, c.assignee ? ` → ${c.assignee}` : '', c.note ? h('q', {}, c.note) : null)));
      document.getElementById('alert-status').replaceChildren(statusBadge(r.triage.status));
      exception.hidden = r.triage.status !== 'false_positive';
    } catch (err) {
      message.textContent = '';
      message.append(errorBox(err));
    }
  });
  const exception = exceptionPanel(id, params, data.alert);
  exception.hidden = state.status !== 'false_positive';
  return section('Triage', form, h('h3', {}, 'History'), history, exception);
}

function exceptionPanel(id, params, a) {
  const boxes = EXCEPTION_FIELDS.filter((f) => a[f] !== null && a[f] !== undefined).map((f) =>
    h('label', { class: 'check' }, h('input', { type: 'checkbox', name: f, checked: f === 'user_name' || f === 'namespace' }), ` ${f} = `, cell(a[f], 40)));
  const out = h('pre', { id: 'exception-yaml' });
  const note = h('p', { class: 'muted', role: 'status' });
  const fields = () => boxes.map((b) => b.querySelector('input')).filter((i) => i.checked).map((i) => i.name).join(',');
  const preview = h('button', { type: 'button', id: 'exception-preview' }, 'Show exception YAML');
  const append = h('button', { type: 'button', id: 'exception-append' }, 'Append to exceptions file');
  preview.addEventListener('click', async () => {
    try {
      const r = await api.exceptionPreview(id, { time: params.time, fields: fields() });
      out.textContent = r.yaml;
      note.textContent = r.file ? `The server appends to ${r.file}.` : 'The server has no exceptions file: add this to a rules file given with --rules.';
    } catch (err) { note.replaceChildren(errorBox(err)); }
  });
  append.addEventListener('click', async () => {
    try {
      const r = await api.exceptionAppend(id, { time: params.time, fields: fields() });
      note.textContent = `Appended to ${r.file}; it applies ${r.applies}.`;
    } catch (err) { note.replaceChildren(errorBox(err)); }
  });
  return h('div', { class: 'exception', id: 'exception' }, h('h3', {}, 'Silence alerts like this one'),
    h('p', { class: 'muted' }, 'An exception for this rule matching the fields you tick:'), h('div', { class: 'checks' }, boxes),
    preview, ' ', append, note, out);
}

export async function render(root, params, id) {
  const minutes = params.minutes || 30;
  const data = await api.alert(id, { time: params.time, minutes });
  const a = data.alert;
  const rule = data.rule || {};
  // The rules that fired on each request of the window (several may fire on one).
  const alerting = new Map();
  for (const x of data.context.alerts || []) {
    const rules = alerting.get(x.audit_id) || [];
    if (!rules.includes(x.rule_id)) rules.push(x.rule_id);
    alerting.set(x.audit_id, rules);
  }
  const header = h('div', { class: 'alert-head' },
    h('p', {}, link('alerts', {}, '‹ Alerts')),
    h('h1', { id: 'alert-title' }, severityBadge(a.severity), ' ', a.rule_title),
    h('p', { class: 'message', id: 'alert-message' }, a.message),
    h('p', { class: 'muted' }, `${fmtTime(a.event_time)} · ${a.cluster || ''} · `, h('span', { id: 'alert-status' }, statusBadge(data.triage && data.triage.status)),
      a.count > 1 ? ` · ${a.count} events` : ''));

  const ruleBox = section('Rule',
    kv([['id', rule.id || a.rule_id], ['title', rule.title], ['severity', rule.severity], ['category', rule.category], ['tags', a.tags]]),
    rule.description ? h('p', {}, rule.description) : null,
    (a.mitre || rule.mitre || []).length ? h('p', {}, 'MITRE ATT&CK: ', (a.mitre || rule.mitre).flatMap((m, i) => (i ? [', ', mitreLink(m)] : [mitreLink(m)]))) : null,
    rule.condition ? h('details', {}, h('summary', {}, 'Condition'), h('pre', {}, rule.condition)) : null,
    rule.threshold ? h('p', {}, `Threshold: ${rule.threshold.count} in ${rule.threshold.window} by ${(rule.threshold.group_by || []).join(', ')}`) : null);

  const trigger = data.event.length ? data.event[data.event.length - 1] : null;
  const eventBox = section('Event', trigger ? renderEvent(trigger) : h('p', { class: 'muted' }, 'The triggering event is no longer in the lake.'));
  const evidenceBox = data.evidence.length ? section(`Evidence (${data.evidence.length} events)`,
    dataTable(TIMELINE, data.evidence, { pageSize: 20 })) : null;

  const ctx = data.context;
  const windowSelect = h('select', { id: 'context-minutes' }, [5, 15, 30, 60, 240, 1440].map((m) => h('option', { value: m, selected: String(m) === String(ctx.minutes) }, `±${m} min`)));
  windowSelect.addEventListener('change', () => go(`alert/${encodeURIComponent(id)}`, { ...params, minutes: windowSelect.value }));
  const timeline = dataTable(['alert', ...TIMELINE], ctx.events.map((e) => ({ ...e, alert: alerting.has(e.audit_id) ? alerting.get(e.audit_id).join(', ') : '' })), {
    pageSize: 100,
    rowClass: (e) => (e.audit_id === a.audit_id ? 'alerting this' : alerting.has(e.audit_id) ? 'alerting' : undefined),
    render: (c, e) => (c === 'alert' ? (e.alert ? h('span', { class: 'flag', title: e.alert }, '⚑ ', e.alert) : '') : c === 'event_time' ? fmtTime(e.event_time) : undefined),
  });
  const contextBox = section(`Context: ${ctx.identity_column === 'user_name' ? 'user' : 'source IP'} ${ctx.identity ?? '(none)'}`,
    h('p', { class: 'muted' }, `${ctx.events.length}${ctx.truncated ? '+' : ''} requests from ${fmtTime(ctx.since_ms)} to ${fmtTime(ctx.until_ms)}, oldest first; flagged rows raised alerts. Window `, windowSelect),
    pivots(a, ctx), h('div', { id: 'context-timeline' }, timeline));

  root.append(header, h('div', { class: 'columns' },
    h('div', { class: 'main-col' }, eventBox, evidenceBox, contextBox),
    h('div', { class: 'side-col' }, triagePanel(id, params, data), ruleBox)));
}
