// Spend, from the `usage` tool (which needs `usage:read`): this month's budget as a gauge (spent, reserved,
// remaining), the daily trend, spend by model and by user, a banner at the tenant's warning level or when the
// budget is exhausted, and the ledger exported as CSV or JSON for a range of days.
import { $, h, show, showError, money } from './dom.js';
import * as api from './api.js';
import { gauge, dailyBars, rankedBars } from './charts.js';

// The daily trend covers the last 30 days, so it says something on the first day of a month too.
const TREND_DAYS = 30;

export async function loadSpend() {
  const allowed = api.scopes().has('usage:read');
  show($('spend-denied'), !allowed);
  show($('spend-body'), false);
  showError($('spend-error'), null);
  if (!allowed) return;
  try {
    const today = new Date();
    const day = (offset) => new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() + offset)).toISOString().slice(0, 10);
    const [standing, days, models, users] = await Promise.all([
      api.tool('usage', {}),
      api.tool('usage', { by: 'day', since: day(-(TREND_DAYS - 1)), until: day(1) }),
      api.tool('usage', { by: 'model' }),
      api.tool('usage', { by: 'user' }),
    ]);
    render(standing, days.ledger, models.ledger, users.ledger);
    show($('spend-body'));
  } catch (err) {
    showError($('spend-error'), err);
  }
}

function render(u, days, models, users) {
  const budget = Number(u.budget), spent = Number(u.spent), reserved = Number(u.reserved);
  const remaining = Number(u.remaining);
  const warn = u.warnAtPercent ?? 80;
  const used = budget > 0 ? ((spent + reserved) / budget) * 100 : 0;
  const label = `Spent ${u.spent} and reserved ${u.reserved} of a ${u.budget} ${u.currency} budget; ${u.remaining} remaining`;
  const g = $('gauge');
  g.replaceChildren(gauge({ budget, spent, reserved, warnAtPercent: warn, label }));
  Object.assign(g.dataset, { spent: u.spent, reserved: u.reserved, remaining: u.remaining, budget: u.budget });
  $('figures').replaceChildren(
    h('dt', {}, 'Spent'), h('dd', { dataset: { figure: 'spent' } }, money(u.spent, u.currency)),
    h('dt', {}, 'Reserved'), h('dd', { dataset: { figure: 'reserved' } }, money(u.reserved, u.currency)),
    h('dt', {}, 'Remaining'), h('dd', { dataset: { figure: 'remaining' } }, money(u.remaining, u.currency)),
    h('dt', {}, 'Budget'), h('dd', {}, money(u.budget, u.currency)),
    h('dt', {}, 'Yours'), h('dd', {}, money(u.userSpent, u.currency)));
  const banner = $('spend-banner');
  banner.className = 'banner';
  if (budget > 0 && remaining <= 0) {
    banner.textContent = `The monthly budget of ${money(u.budget, u.currency)} is exhausted: new tasks that call a model are refused until the next period or a larger budget.`;
    banner.classList.add('exhausted');
    banner.dataset.level = 'exhausted';
    show(banner);
  } else if (budget > 0 && used >= warn) {
    banner.textContent = `${used.toFixed(0)}% of the monthly budget is spent or reserved (the warning level is ${warn}%).`;
    banner.classList.add('warn');
    banner.dataset.level = 'warn';
    show(banner);
  } else {
    show(banner, false);
  }
  $('trend').replaceChildren(dailyBars(days.rows, days.since, days.until, u.currency));
  $('by-model').replaceChildren(rankedBars(models.rows, u.currency, 'model'));
  $('by-user').replaceChildren(rankedBars(users.rows, u.currency, 'user'));
  if (!$('since').value) {
    $('since').value = models.since;
    $('until').value = models.until;
  }
}

export function initSpend() {
  $('export-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const format = e.submitter?.value === 'json' ? 'json' : 'csv';
    const since = $('since').value, until = $('until').value;
    showError($('spend-error'), null);
    try {
      const blob = await api.ledger(since, until, format);
      const url = URL.createObjectURL(blob);
      const a = h('a', { href: url, download: `ledger-${since}-${until}.${format}`, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      showError($('spend-error'), err);
    }
  });
}
