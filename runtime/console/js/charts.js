// Hand-written SVG charts: a gauge of the month's budget, daily bars, and ranked bars. Each chart is an image
// with a text alternative (aria-label), and its numbers are also printed beside it as text.

const NS = 'http://www.w3.org/2000/svg';

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

// The point at fraction f (0..1) along a half circle from the left end to the right end.
function at(cx, cy, r, f) {
  const a = Math.PI * (1 - f);
  return [cx + r * Math.cos(a), cy - r * Math.sin(a)];
}

function arc(cx, cy, r, from, to) {
  const [x1, y1] = at(cx, cy, r, from);
  const [x2, y2] = at(cx, cy, r, to);
  return `M ${x1.toFixed(2)} ${y1.toFixed(2)} A ${r} ${r} 0 0 1 ${x2.toFixed(2)} ${y2.toFixed(2)}`;
}

// A half-circle gauge: spent, then reserved, out of the budget, with a tick at the warning level.
export function gauge({ budget, spent, reserved, warnAtPercent, label }) {
  const b = Math.max(budget, 0);
  const fs = b > 0 ? Math.min(spent / b, 1) : (spent > 0 ? 1 : 0);
  const fr = b > 0 ? Math.min((spent + reserved) / b, 1) : fs;
  const cx = 100, cy = 100, r = 80;
  const root = svg('svg', { viewBox: '0 0 200 120', role: 'img', 'aria-label': label, class: 'gauge-svg' });
  root.append(svg('path', { d: arc(cx, cy, r, 0, 1), class: 'g-track', 'stroke-width': 18, fill: 'none' }));
  if (fr > fs) root.append(svg('path', { d: arc(cx, cy, r, fs, fr), class: 'g-reserved', 'stroke-width': 18, fill: 'none' }));
  if (fs > 0) root.append(svg('path', { d: arc(cx, cy, r, 0, Math.max(fs, 0.004)), class: fs * 100 >= warnAtPercent ? 'g-spent warn' : 'g-spent', 'stroke-width': 18, fill: 'none' }));
  const w = Math.min(Math.max(warnAtPercent / 100, 0), 1);
  const [x1, y1] = at(cx, cy, r - 13, w);
  const [x2, y2] = at(cx, cy, r + 13, w);
  root.append(svg('line', { x1, y1, x2, y2, class: 'g-warn', 'stroke-width': 2 }));
  root.append(svg('text', { x: cx, y: cy - 10, 'text-anchor': 'middle', class: 'g-value' }, `${Math.round(fs * 100)}%`));
  root.append(svg('text', { x: cx, y: cy + 12, 'text-anchor': 'middle', class: 'g-caption' }, 'of the budget spent'));
  return root;
}

// Vertical bars, one per day of [since, until), from ledger rows keyed by YYYY-MM-DD.
export function dailyBars(rows, since, until, currency) {
  const byDay = new Map(rows.map((r) => [r.key, Number(r.cost)]));
  const days = [];
  for (let d = new Date(`${since}T00:00:00Z`); d < new Date(`${until}T00:00:00Z`); d.setUTCDate(d.getUTCDate() + 1)) {
    const key = d.toISOString().slice(0, 10);
    days.push([key, byDay.get(key) ?? 0]);
  }
  const max = Math.max(...days.map(([, v]) => v), 0);
  const width = 300, height = 120, pad = 18;
  const bw = (width - 2) / Math.max(days.length, 1);
  const total = days.reduce((s, [, v]) => s + v, 0);
  const root = svg('svg', {
    viewBox: `0 0 ${width} ${height + pad}`, role: 'img', class: 'bars-svg',
    'aria-label': `Daily spend from ${since}: ${total.toFixed(4)} ${currency} in all, at most ${max.toFixed(4)} on one day`,
  });
  root.append(svg('line', { x1: 0, y1: height, x2: width, y2: height, class: 'axis' }));
  days.forEach(([key, v], i) => {
    const bh = max > 0 ? Math.max((v / max) * (height - 12), v > 0 ? 2 : 0) : 0;
    const bar = svg('rect', { x: 1 + i * bw + bw * 0.15, y: height - bh, width: bw * 0.7, height: bh, class: 'bar', 'data-day': key });
    bar.append(svg('title', {}, `${key}: ${v} ${currency}`));
    root.append(bar);
  });
  if (days.length) {
    root.append(svg('text', { x: 1, y: height + 14, class: 'tick' }, days[0][0].slice(5)));
    root.append(svg('text', { x: width - 1, y: height + 14, 'text-anchor': 'end', class: 'tick' }, days[days.length - 1][0].slice(5)));
  }
  root.append(svg('text', { x: 2, y: 10, class: 'tick' }, `max ${max.toFixed(2)} ${currency}`));
  return root;
}

// Horizontal bars, one per row ({key, cost}), largest first.
export function rankedBars(rows, currency, what) {
  const top = rows.slice(0, 8);
  const max = Math.max(...top.map((r) => Number(r.cost)), 0);
  const line = 22, width = 300, labelW = 110;
  const root = svg('svg', {
    viewBox: `0 0 ${width} ${Math.max(top.length, 1) * line}`, role: 'img', class: 'ranked-svg',
    'aria-label': top.length ? `Spend by ${what}: ${top.map((r) => `${r.key} ${r.cost} ${currency}`).join(', ')}` : `No spend by ${what} yet`,
  });
  if (!top.length) root.append(svg('text', { x: 0, y: 15, class: 'tick' }, 'No spend yet this month'));
  top.forEach((r, i) => {
    const y = i * line;
    const bw = max > 0 ? Math.max((Number(r.cost) / max) * (width - labelW - 70), 2) : 0;
    const name = r.key.length > 16 ? `${r.key.slice(0, 15)}…` : r.key;
    root.append(svg('text', { x: 0, y: y + 15, class: 'label' }, name));
    root.append(svg('rect', { x: labelW, y: y + 4, width: bw, height: 14, class: 'bar' }));
    root.append(svg('text', { x: labelW + bw + 4, y: y + 15, class: 'tick' }, `${Number(r.cost).toFixed(2)}`));
  });
  return root;
}
