// Small SVG charts: a time histogram whose bars are filters, and a bar or line chart of a query
// result. Labels go in as text nodes.

const NS = 'http://www.w3.org/2000/svg';

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = String(text);
  return el;
}

// `histogram` is the server's `{bucket_seconds, buckets: [{start_ms, count}]}`; clicking a bar
// calls `onSelect(startMs, endMs)`.
export function histogram(histogram, onSelect) {
  const buckets = (histogram && histogram.buckets) || [];
  const width = 900;
  const height = 90;
  const root = svg('svg', { viewBox: `0 0 ${width} ${height + 16}`, class: 'histogram', role: 'img', 'aria-label': 'count over time' });
  if (!buckets.length) {
    root.append(svg('text', { x: 8, y: 40, class: 'axis' }, 'no data in this range'));
    return root;
  }
  const step = histogram.bucket_seconds * 1000;
  const first = Math.min(histogram.since_ms ?? buckets[0].start_ms, buckets[0].start_ms);
  const last = Math.max(histogram.until_ms ?? 0, buckets[buckets.length - 1].start_ms + step);
  const span = Math.max(last - first, step);
  const max = Math.max(...buckets.map((b) => b.count));
  const barWidth = Math.max(2, (step / span) * width - 1);
  for (const b of buckets) {
    const x = ((b.start_ms - first) / span) * width;
    const barHeight = Math.max(1, (b.count / max) * height);
    const bar = svg('rect', { x: x.toFixed(1), y: (height - barHeight).toFixed(1), width: barWidth.toFixed(1), height: barHeight.toFixed(1), class: 'bar', tabindex: 0 });
    bar.append(svg('title', {}, `${new Date(b.start_ms).toISOString()}: ${b.count}`));
    if (onSelect) {
      const select = () => onSelect(b.start_ms, b.start_ms + step);
      bar.addEventListener('click', select);
      bar.addEventListener('keydown', (e) => { if (e.key === 'Enter') select(); });
    }
    root.append(bar);
  }
  root.append(svg('text', { x: 0, y: height + 14, class: 'axis' }, new Date(first).toISOString().replace(':00.000Z', 'Z')));
  root.append(svg('text', { x: width, y: height + 14, class: 'axis', 'text-anchor': 'end' }, new Date(last).toISOString().replace(':00.000Z', 'Z')));
  root.append(svg('text', { x: width / 2, y: height + 14, class: 'axis', 'text-anchor': 'middle' }, `max ${max} per ${histogram.bucket_seconds >= 3600 ? `${histogram.bucket_seconds / 3600} h` : `${histogram.bucket_seconds / 60} min`}`));
  return root;
}

const isNumber = (t) => /^(Int|UInt|Float|Decimal)/.test(t);
const isTime = (t) => /^(Timestamp|Date)/.test(t);

// A chart for a result of a label or time column and a numeric one, else null.
export function resultChart(columns, rows) {
  if (columns.length < 2 || !rows.length || rows.length > 500) return null;
  const [x, y] = columns;
  if (!isNumber(y.type)) return null;
  const line = isTime(x.type);
  const points = rows.map((r) => ({ label: r[x.name], value: Number(r[y.name]) || 0 }));
  if (line) points.sort((a, b) => new Date(a.label) - new Date(b.label));
  const width = 900;
  const height = 220;
  const max = Math.max(...points.map((p) => p.value), 1);
  const root = svg('svg', { viewBox: `0 0 ${width} ${height + 40}`, class: 'result-chart', role: 'img', 'aria-label': `${y.name} by ${x.name}` });
  const slot = width / points.length;
  if (line) {
    const d = points.map((p, i) => `${i ? 'L' : 'M'}${(i * slot + slot / 2).toFixed(1)},${(height - (p.value / max) * height).toFixed(1)}`).join(' ');
    root.append(svg('path', { d, class: 'line' }));
  } else {
    points.forEach((p, i) => {
      const barHeight = Math.max(1, (p.value / max) * height);
      const bar = svg('rect', { x: (i * slot + 1).toFixed(1), y: (height - barHeight).toFixed(1), width: Math.max(1, slot - 2).toFixed(1), height: barHeight.toFixed(1), class: 'bar' });
      bar.append(svg('title', {}, `${p.label}: ${p.value}`));
      root.append(bar);
    });
  }
  const labels = Math.min(points.length, 8);
  for (let k = 0; k < labels; k += 1) {
    const i = Math.floor((k * points.length) / labels);
    const text = String(points[i].label ?? '∅');
    root.append(svg('text', { x: (i * slot + 2).toFixed(1), y: height + 14 + (k % 2) * 12, class: 'axis' }, text.length > 24 ? `${text.slice(0, 23)}…` : text));
  }
  root.append(svg('text', { x: width, y: 12, class: 'axis', 'text-anchor': 'end' }, `max ${max}`));
  return root;
}
