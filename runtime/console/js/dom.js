// Small DOM helpers. Text always goes in as text (textContent), never as markup, so nothing a document or a
// model wrote can run in the page.

export const $ = (id) => document.getElementById(id);

// h('li', {class: 'x', onclick: f}, 'text', child): an element with attributes, listeners and children.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function show(el, visible = true) { el.hidden = !visible; }

export function showError(el, err) {
  if (!err) { el.hidden = true; el.textContent = ''; return; }
  el.textContent = err.message || String(err);
  el.hidden = false;
}

export function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

export function money(amount, currency) {
  const n = Number(amount);
  return `${n.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 4 })} ${currency ?? ''}`.trim();
}
