// Search over `hybrid_search`: the mode and the arms' weights as controls; each hit with why it ranked (its
// lexical and vector ranks and scores) and whether the search fell back to lexical only.
import { $, h, showError } from './dom.js';
import * as api from './api.js';
import { openDocument } from './documents.js';

function arm(name, a) {
  if (!a) return h('span', { class: 'chip off' }, `${name}: not ranked`);
  return h('span', { class: 'chip', 'data-arm': name }, `${name} #${a.rank} · ${Number(a.score).toFixed(3)}`);
}

export function initSearch() {
  $('search-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const mode = $('mode').value;
    const weights = {
      lexical: mode === 'vector' ? 0 : Number($('w-lexical').value),
      vector: mode === 'lexical' ? 0 : Number($('w-vector').value),
    };
    showError($('search-error'), null);
    $('search-status').textContent = 'Searching…';
    $('hits').replaceChildren();
    try {
      const r = await api.tool('hybrid_search', { query: $('q').value, limit: 10, weights });
      const degraded = r.degraded
        ? ' Degraded: the vector arm was unavailable, so these are lexical results only.'
        : '';
      $('search-status').textContent = `${r.hits.length} hit(s), ${r.mode} ranking.${degraded}`;
      $('search-status').classList.toggle('degraded', Boolean(r.degraded));
      $('hits').replaceChildren(...r.hits.map((hit) => h('li', { class: 'hit', dataset: { id: hit.id } },
        h('h2', {}, h('button', { type: 'button', class: 'link', onclick: () => openDocument(hit.id) }, hit.title || hit.id)),
        h('p', { class: 'snippet' }, hit.snippet ?? ''),
        h('p', { class: 'why' },
          h('span', { class: 'chip score' }, `fused ${Number(hit.score).toFixed(3)}`),
          arm('lexical', hit.lexical), arm('vector', hit.vector),
          r.degraded ? h('span', { class: 'chip warn' }, 'degraded to lexical') : null,
          h('span', { class: 'mono small' }, hit.id)))));
    } catch (err) {
      $('search-status').textContent = '';
      showError($('search-error'), err);
    }
  });
}
