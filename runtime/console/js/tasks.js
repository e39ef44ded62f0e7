// Tasks over A2A: start a `research` or `rag` task and watch its steps arrive over SSE (`message/stream`),
// read its report with the citations linked to their documents, cancel it while it runs, and list tasks with
// state, cost and time (`tasks/list`: the caller's own, or the whole tenant's with `tasks:admin`). The task being
// watched is remembered in this tab's session storage, so after a reload the view follows it again
// (`tasks/resubscribe`): the steps since then stream in and the report arrives.
import { $, h, show, showError, when, money } from './dom.js';
import * as api from './api.js';
import { openDocument } from './documents.js';

let running = null; // { id, abort }

// The running task this tab watches, kept across reloads.
const WATCHING = 'paddock.console.watching';

function setState(state) {
  const b = $('task-state');
  b.textContent = state;
  b.dataset.state = state;
}

function textOf(parts) {
  return (parts ?? []).filter((p) => p.kind === 'text' || p.text !== undefined).map((p) => p.text).join('\n');
}

function dataOf(parts) {
  return (parts ?? []).find((p) => p.kind === 'data' || p.data !== undefined)?.data;
}

// A report's Markdown as text: headings, paragraphs and list items, each [id] a link to that document.
function renderReport(title, text, data) {
  const cited = new Set((data?.citations ?? []).map((c) => c.id));
  const inline = (line) => {
    const out = [];
    let last = 0;
    for (const m of line.matchAll(/\[([A-Za-z0-9._:\/-]{1,256})\]/g)) {
      out.push(line.slice(last, m.index));
      const id = m[1];
      out.push(h('button', { type: 'button', class: `link cite${cited.has(id) ? ' verified' : ''}`, dataset: { doc: id }, onclick: () => openDocument(id) }, `[${id}]`));
      last = m.index + m[0].length;
    }
    out.push(line.slice(last));
    return out;
  };
  const blocks = [h('h2', {}, title)];
  let list = null;
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (!line.trim()) { list = null; continue; }
    const heading = line.match(/^#{1,6}\s+(.*)$/);
    const item = line.match(/^\s*[-*]\s+(.*)$/);
    if (heading) { list = null; blocks.push(h('h3', {}, ...inline(heading[1]))); } else if (item) {
      if (!list) { list = h('ul'); blocks.push(list); }
      list.append(h('li', {}, ...inline(item[1])));
    } else { list = null; blocks.push(h('p', {}, ...inline(line))); }
  }
  if (data?.cost !== undefined) blocks.push(h('p', { class: 'small' }, `Cost ${money(data.cost, data.currency)} · model ${data.model ?? ''}`));
  const report = $('task-report');
  report.replaceChildren(...blocks);
  show(report);
}

function onEvent(ev) {
  if (ev.kind === 'task' || (ev.id && ev.status && !ev.kind)) {
    running.id = ev.id;
    $('task-id').textContent = ev.id.slice(0, 8);
    setState(ev.status?.state ?? 'submitted');
    sessionStorage.setItem(WATCHING, ev.id);
    return;
  }
  if (ev.kind === 'status-update') {
    setState(ev.status.state);
    const text = textOf(ev.status.message?.parts);
    const step = ev.status.message?.metadata?.step;
    if (text) $('task-steps').append(h('li', { class: 'step', dataset: { step: step ?? 'status' } }, step ? h('span', { class: 'badge' }, step) : null, ' ', text));
    if (ev.final) finish();
    return;
  }
  if (ev.kind === 'artifact-update') {
    const a = ev.artifact;
    if (a.artifactId === 'report' || a.artifactId === 'answer') renderReport(a.name ?? 'Report', textOf(a.parts), dataOf(a.parts));
  }
}

function finish() {
  sessionStorage.removeItem(WATCHING);
  show($('task-cancel'), false);
  $('task-start').disabled = false;
  running = null;
  loadTasks();
}

export function initTasks() {
  $('task-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    if (running) return;
    showError($('tasks-error'), null);
    $('task-steps').replaceChildren();
    show($('task-report'), false);
    $('task-id').textContent = '';
    setState('submitting');
    show($('task-live'));
    const abort = new AbortController();
    running = { id: null, abort };
    $('task-start').disabled = true;
    show($('task-cancel'));
    const message = {
      kind: 'message', role: 'user', messageId: crypto.randomUUID(),
      parts: [{ kind: 'text', text: $('question').value }],
      metadata: { skill: $('skill').value },
    };
    try {
      await api.a2aStream({ message }, onEvent, abort.signal);
    } catch (err) {
      if (err.name !== 'AbortError') showError($('tasks-error'), err);
    }
    if (running) finish();
  });
  $('task-cancel').addEventListener('click', async () => {
    if (!running?.id) return;
    try {
      const t = await api.a2a('tasks/cancel', { id: running.id });
      setState(t.status?.state ?? 'canceled');
    } catch (err) {
      showError($('tasks-error'), err);
    }
  });
  $('tasks-refresh').addEventListener('click', () => loadTasks());
}

async function openTask(id) {
  try {
    const t = await api.a2a('tasks/get', { id });
    show($('task-live'));
    $('task-id').textContent = t.id.slice(0, 8);
    setState(t.status.state);
    $('task-steps').replaceChildren();
    const a = (t.artifacts ?? []).find((x) => x.artifactId === 'report' || x.artifactId === 'answer');
    if (a) renderReport(a.name ?? 'Report', textOf(a.parts), dataOf(a.parts)); else show($('task-report'), false);
    $('task-live').scrollIntoView({ block: 'nearest' });
  } catch (err) {
    showError($('tasks-error'), err);
  }
}

// Follows the task this tab watched before a reload, from where it is now.
async function resume(id) {
  showError($('tasks-error'), null);
  $('task-steps').replaceChildren(h('li', { class: 'step', dataset: { step: 'resumed' } }, 'Following the task again after a reload…'));
  show($('task-report'), false);
  $('task-id').textContent = id.slice(0, 8);
  setState('resuming');
  show($('task-live'));
  const abort = new AbortController();
  running = { id, abort };
  $('task-start').disabled = true;
  show($('task-cancel'));
  try {
    await api.a2aStream({ id }, onEvent, abort.signal, 'tasks/resubscribe');
  } catch (err) {
    if (err.name === 'AbortError') return;
    // It ended meanwhile (a finished task cannot be followed): show it as it ended.
    sessionStorage.removeItem(WATCHING);
    if (running) finish();
    await openTask(id);
    return;
  }
  if (running) finish();
}

export async function loadTasks() {
  const s = api.scopes();
  const canRun = s.has('tasks:run');
  const canRead = canRun || s.has('tasks:admin');
  show($('task-form'), canRun);
  show($('tasks-note'), !canRun);
  $('tasks-whose').textContent = s.has('tasks:admin') ? 'All tasks of your tenant (tasks:admin).' : 'Your tasks.';
  $('task-rows').replaceChildren();
  if (!canRead) return;
  const watched = sessionStorage.getItem(WATCHING);
  if (watched && !running && canRun) resume(watched);
  try {
    const r = await api.a2a('tasks/list', { pageSize: 25 });
    $('task-rows').replaceChildren(...r.tasks.map((t) => h('tr', { dataset: { id: t.id, state: t.status.state } },
      h('td', {}, when(t.status.timestamp)),
      h('td', {}, t.metadata?.skill ?? ''),
      h('td', {}, h('span', { class: 'badge', dataset: { state: t.status.state } }, t.status.state)),
      h('td', {}, t.metadata?.cost !== undefined ? money(t.metadata.cost, t.metadata.currency) : '–'),
      h('td', {}, h('button', { type: 'button', class: 'link', 'aria-label': `Open task ${t.id}`, onclick: () => openTask(t.id) }, 'Open')))));
    if (!r.tasks.length) $('task-rows').append(h('tr', {}, h('td', { colspan: 5 }, 'No tasks yet.')));
  } catch (err) {
    showError($('tasks-error'), err);
  }
}
