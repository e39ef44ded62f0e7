// Documents: a paged list (`list_documents`), a reader (`get_document`), and, with `documents:write`, upload
// (`upsert_document`, one call per document, with progress) and delete (`delete_document`, confirmed).
import { $, h, show, showError, when } from './dom.js';
import * as api from './api.js';

const PAGE = 20;
let cursors = [null];
let page = 0;
let next = null;

export async function openDocument(id) {
  const dialog = $('doc-dialog');
  $('doc-title').textContent = id;
  $('doc-meta').textContent = '';
  $('doc-content').textContent = 'Loading…';
  if (!dialog.open) dialog.showModal();
  try {
    const d = await api.tool('get_document', { id });
    $('doc-title').textContent = d.title || d.id;
    $('doc-meta').textContent = `${d.id} · ${JSON.stringify(d.metadata ?? {})}`;
    $('doc-content').replaceChildren(...String(d.content ?? '').split(/\n{2,}/).map((p) => h('p', {}, p)));
  } catch (err) {
    $('doc-content').textContent = err.message;
  }
}

export async function loadDocuments() {
  const canWrite = api.scopes().has('documents:write');
  show($('upload-form'), canWrite);
  show($('documents-note'), !canWrite);
  showError($('documents-error'), null);
  $('doc-rows').replaceChildren();
  try {
    const r = await api.tool('list_documents', { limit: PAGE, cursor: cursors[page] });
    next = r.nextCursor || null;
    $('doc-rows').replaceChildren(...r.documents.map((d) => row(d, canWrite)));
    if (!r.documents.length) $('doc-rows').append(h('tr', {}, h('td', { colspan: 4 }, 'No documents yet.')));
    $('documents-status').textContent = `Page ${page + 1}`;
    $('doc-prev').disabled = page === 0;
    $('doc-next').disabled = !next;
  } catch (err) {
    showError($('documents-error'), err);
  }
}

function row(d, canWrite) {
  const del = h('button', { type: 'button', class: 'danger quiet' }, 'Delete');
  del.addEventListener('click', async () => {
    if (del.dataset.armed !== 'yes') {
      del.dataset.armed = 'yes';
      del.textContent = 'Confirm delete';
      return;
    }
    try {
      await api.tool('delete_document', { id: d.id });
      $('documents-status').textContent = `Deleted ${d.id}.`;
      await loadDocuments();
    } catch (err) {
      showError($('documents-error'), err);
    }
  });
  return h('tr', { dataset: { id: d.id } },
    h('td', {}, h('button', { type: 'button', class: 'link', onclick: () => openDocument(d.id) }, d.title || d.id)),
    h('td', { class: 'mono' }, d.id),
    h('td', {}, when(d.updated_at ?? d.updatedAt)),
    h('td', {}, canWrite ? del : null));
}

// The documents of a file: JSONL (one {id, title, content, metadata} object per line), or else the whole
// text as one document named after the file.
function parseFile(name, text) {
  if (/\.jsonl$/i.test(name)) {
    return text.split('\n').map((l, i) => [l.trim(), i + 1]).filter(([l]) => l).map(([l, n]) => {
      let d;
      try { d = JSON.parse(l); } catch { throw new Error(`Line ${n} is not JSON.`); }
      if (typeof d.id !== 'string' || typeof d.content !== 'string') throw new Error(`Line ${n} needs an "id" and a "content" string.`);
      return { id: d.id, title: String(d.title ?? ''), content: d.content, ...(d.metadata ? { metadata: d.metadata } : {}) };
    });
  }
  const id = name.replace(/\.[^.]*$/, '').replace(/[^A-Za-z0-9._-]+/g, '-').slice(0, 200) || 'document';
  return [{ id, title: name, content: text }];
}

export function initDocuments() {
  $('doc-prev').addEventListener('click', () => { if (page > 0) { page -= 1; loadDocuments(); } });
  $('doc-next').addEventListener('click', () => {
    if (next) { cursors[page + 1] = next; page += 1; loadDocuments(); }
  });
  $('doc-close').addEventListener('click', () => $('doc-dialog').close());
  $('upload-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const file = $('upload-file').files[0];
    showError($('documents-error'), null);
    if (!file) { showError($('documents-error'), new Error('Choose a file first.')); return; }
    let docs;
    try {
      docs = parseFile(file.name, await file.text());
    } catch (err) {
      showError($('documents-error'), err);
      return;
    }
    const bar = $('upload-bar');
    bar.max = docs.length;
    bar.value = 0;
    show($('upload-progress'));
    try {
      for (const [i, d] of docs.entries()) {
        $('upload-label').textContent = `Uploading ${i + 1} of ${docs.length}: ${d.id}`;
        await api.tool('upsert_document', d);
        bar.value = i + 1;
      }
      $('upload-label').textContent = `Uploaded ${docs.length} document(s).`;
      $('documents-status').textContent = `Uploaded ${docs.length} document(s).`;
      cursors = [null]; page = 0;
      await loadDocuments();
    } catch (err) {
      showError($('documents-error'), err);
    }
  });
}
