// The console's entry point: sign-in, then one view at a time chosen by the address's fragment (#search,
// #documents, #tasks, #spend), which never holds the token. Views a token's scopes do not allow are not shown.
import { $, show } from './dom.js';
import * as api from './api.js';
import { initSignin } from './signin.js';
import { initSearch } from './search.js';
import { initDocuments, loadDocuments } from './documents.js';
import { initTasks, loadTasks } from './tasks.js';
import { initSpend, loadSpend } from './spend.js';

const VIEWS = ['search', 'documents', 'tasks', 'spend'];
const LOADERS = { documents: loadDocuments, tasks: loadTasks, spend: loadSpend };

function allowedViews() {
  const s = api.scopes();
  return VIEWS.filter((v) => v !== 'spend' || s.has('usage:read'));
}

function route() {
  if (!api.getToken()) {
    for (const v of VIEWS) show($(v), false);
    show($('nav'), false);
    show($('who'), false);
    show($('signin'));
    $('token').focus();
    return;
  }
  show($('signin'), false);
  const views = allowedViews();
  const wanted = location.hash.slice(1);
  const view = VIEWS.includes(wanted) ? wanted : 'search';
  for (const a of document.querySelectorAll('#nav a')) {
    show(a, views.includes(a.dataset.view));
    if (a.dataset.view === view) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  for (const v of VIEWS) show($(v), v === view);
  show($('nav'));
  const c = api.claims();
  $('who-name').textContent = `${c.sub ?? 'signed in'}${c.tenant_id ? ` · ${c.tenant_id}` : ''}`;
  show($('who'));
  LOADERS[view]?.();
}

document.addEventListener('DOMContentLoaded', () => {
  initSignin(() => {
    if (!location.hash) history.replaceState(null, '', '#search');
    route();
  });
  initSearch();
  initDocuments();
  initTasks();
  initSpend();
  $('sign-out').addEventListener('click', () => {
    api.setToken('');
    // Forget everything this tab kept: the token, a sign-in under way, the task being watched.
    sessionStorage.clear();
    history.replaceState(null, '', location.pathname);
    route();
  });
  window.addEventListener('hashchange', () => {
    route();
    $('main').focus();
  });
  route();
});
