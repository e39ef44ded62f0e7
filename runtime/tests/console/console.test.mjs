// Browser tests of the web console: Debian's headless Chromium, driven by playwright-core, against a real
// paddock-runtime and PostgreSQL that scripts/console-test.sh starts (tenant acme with documents, a budget and
// a priced stand-in model; tenant globex empty). Every test checks that the page logged no console error,
// sent the token in no URL and set no cookie.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run scripts/console-test.sh`);
  return v;
};
const require = createRequire(`${env('PADDOCK_NODE_MODULES')}/`);
const { chromium } = require('playwright-core');

const URL = env('PADDOCK_CONSOLE_URL');
const ORIGIN = new globalThis.URL(URL).origin;
const TOKEN = env('PADDOCK_TOKEN');
const TOKEN_NO_USAGE = env('PADDOCK_TOKEN_NO_USAGE');
const TOKEN_READ_ONLY = env('PADDOCK_TOKEN_READ_ONLY');
const TOKEN_OTHER = env('PADDOCK_TOKEN_OTHER');
const ARTIFACTS = env('PADDOCK_ARTIFACTS');
const OAUTH_URL = env('PADDOCK_OAUTH_URL');
const TOKENS = [TOKEN, TOKEN_NO_USAGE, TOKEN_READ_ONLY, TOKEN_OTHER];
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: env('PADDOCK_CHROMIUM'),
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
});
after(async () => { await browser?.close(); });

function sql(query) {
  return execFileSync(env('PADDOCK_PSQL'), [env('PADDOCK_ADMIN_URL'), '-qAtX', '-F', '\t', '-c', query], { encoding: 'utf8' });
}

// A fresh browser context (its own session storage) with a page that records console errors, page errors,
// and any request whose URL holds a token.
async function open(viewport = DESKTOP) {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await context.newPage();
  const problems = [];
  const mcpNames = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('request', (r) => {
    if (TOKENS.some((t) => r.url().includes(t) || r.url().includes(t.split('.')[2]))) problems.push(`token in URL: ${r.url()}`);
    const name = r.headers()['mcp-name'];
    if (name) mcpNames.push(name);
  });
  page.on('framenavigated', (f) => {
    if (TOKENS.some((t) => f.url().includes(t.split('.')[1]))) problems.push(`token in address: ${f.url()}`);
  });
  // `expected`: console messages the test itself provokes (a refused request is logged by the browser).
  const done = async (expected = []) => {
    assert.deepEqual(await context.cookies(), [], 'the console sets no cookie');
    assert.deepEqual(problems.filter((p) => !expected.some((re) => re.test(p))), []);
    await context.close();
  };
  return { context, page, done, mcpNames };
}

async function signIn(page, token, view = '') {
  await page.goto(URL + view);
  await page.fill('#token', token);
  await page.click('#signin-form button[type=submit]');
  await page.waitForSelector('#nav:not([hidden])');
}

async function search(page, query, mode = 'hybrid') {
  await page.goto(`${URL}#search`);
  await page.fill('#q', query);
  await page.selectOption('#mode', mode);
  await page.click('#search-form button[type=submit]');
  await page.waitForFunction(() => /hit\(s\)/.test(document.getElementById('search-status').textContent)
    || !document.getElementById('search-error').hidden);
}

const hitIds = (page) => page.$$eval('#hits li.hit', (els) => els.map((e) => e.dataset.id));

test('the console is served with a policy that forbids inline script and foreign origins', async () => {
  for (const path of ['', 'js/main.js', 'console.css', 'no-such-file']) {
    const r = await fetch(URL + path);
    const csp = r.headers.get('content-security-policy');
    assert.ok(csp, `${path}: a Content-Security-Policy`);
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /frame-ancestors 'none'/);
    // The one foreign origin: the configured authorization server, for its metadata and token endpoint.
    assert.match(csp, new RegExp(`connect-src 'self' ${OAUTH_URL};`));
    assert.doesNotMatch(csp.replace(` ${OAUTH_URL};`, ';'), /unsafe-inline|unsafe-eval|https?:|\*/);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(r.headers.get('set-cookie'), null);
  }
  const root = await fetch(`${ORIGIN}/`, { redirect: 'manual' });
  assert.equal(root.status, 308);
  assert.equal(root.headers.get('location'), '/console/');
  const html = await (await fetch(URL)).text();
  assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script');
  assert.doesNotMatch(html, /\sstyle=|\son[a-z]+=/, 'no inline style or handler');

  // The browser enforces it: a script injected inline does not run.
  const { page, context } = await open();
  await page.goto(URL);
  await page.evaluate(() => {
    const s = document.createElement('script');
    s.textContent = 'window.injected = true';
    document.body.append(s);
  });
  assert.equal(await page.evaluate(() => window.injected), undefined);
  await context.close();
});

test('a pasted token signs in, a bad one is refused, and signing out forgets it', async () => {
  const { page, done } = await open();
  await page.goto(URL);
  await page.fill('#token', 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2ln');
  await page.click('#signin-form button[type=submit]');
  await page.waitForSelector('#signin-error:not([hidden])');
  assert.match(await page.textContent('#signin-error'), /Not signed in/);
  assert.equal(await page.isHidden('#nav'), true);

  await page.fill('#token', TOKEN);
  await page.click('#signin-form button[type=submit]');
  await page.waitForSelector('#nav:not([hidden])');
  assert.match(await page.textContent('#who-name'), /alice/);
  assert.equal(await page.evaluate(() => document.cookie), '');
  assert.equal(page.url().includes(TOKEN), false);
  // A reload keeps the session (session storage), a new tab of another context does not share it.
  await page.reload();
  await page.waitForSelector('#nav:not([hidden])');
  await page.click('#sign-out');
  await page.waitForSelector('#signin:not([hidden])');
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  await done([/status of 401 \(Unauthorized\)/]);
});

test('search shows each hit with its lexical and vector ranks, and opens the document', async () => {
  const { page, done } = await open();
  await signIn(page, TOKEN);
  await search(page, 'right to be forgotten');
  const ids = await hitIds(page);
  assert.equal(ids[0], 'gdpr-art-17');
  const first = page.locator('#hits li.hit').first();
  assert.match(await first.locator('[data-arm=lexical]').textContent(), /^lexical #\d+ · \d/);
  assert.match(await first.locator('[data-arm=vector]').textContent(), /^vector #\d+ · \d/);
  assert.match(await page.textContent('#search-status'), /hybrid ranking\.$/);
  assert.equal(await page.locator('#hits .chip.warn').count(), 0, 'not degraded');

  await first.locator('h2 button').click();
  await page.waitForFunction(() => document.getElementById('doc-title').textContent.startsWith('GDPR Article 17'));
  assert.match(await page.textContent('#doc-content'), /erasure of personal data/);
  await page.keyboard.press('Escape');
  assert.equal(await page.locator('#doc-dialog').evaluate((d) => d.open), false);

  // Lexical only: the vector arm ranks nothing.
  await search(page, 'right to be forgotten', 'lexical');
  assert.equal(await page.locator('#hits [data-arm=vector]').count(), 0);
  assert.ok(await page.locator('#hits [data-arm=lexical]').count() > 0);
  await done();
});

test('an uploaded JSONL file shows progress, its documents are found, and one can be deleted', async () => {
  const { page, done } = await open();
  await signIn(page, TOKEN);
  const dir = mkdtempSync(join(tmpdir(), 'paddock-console-'));
  const file = join(dir, 'upload.jsonl');
  writeFileSync(file, [
    { id: 'console-upload-1', title: 'Quokka handling rules', content: 'Every quokka in the warehouse is logged by the night shift.' },
    { id: 'console-upload-2', title: 'Quokka feeding', content: 'A quokka is fed twice a day, never after dark.', metadata: { kind: 'note' } },
  ].map((d) => JSON.stringify(d)).join('\n'));
  await page.goto(`${URL}#documents`);
  await page.waitForSelector('#doc-rows tr');
  await page.setInputFiles('#upload-file', file);
  await page.click('#upload-form button[type=submit]');
  await page.waitForFunction(() => document.getElementById('upload-label').textContent === 'Uploaded 2 document(s).');
  assert.equal(await page.locator('#upload-bar').evaluate((p) => [p.value, p.max].join('/')), '2/2');
  await page.waitForSelector('#doc-rows tr[data-id="console-upload-1"]');

  await search(page, 'quokka warehouse night shift');
  assert.ok((await hitIds(page)).includes('console-upload-1'));

  await page.goto(`${URL}#documents`);
  const row = page.locator('#doc-rows tr[data-id="console-upload-2"]');
  await row.locator('button.danger').click();
  await row.locator('button', { hasText: 'Confirm delete' }).click();
  await page.waitForSelector('#doc-rows tr[data-id="console-upload-2"]', { state: 'detached' });
  assert.equal(sql("SELECT count(*) FROM documents WHERE id = 'console-upload-2'").trim(), '0');
  await done();
});

test('a token without documents:write can neither upload nor delete', async () => {
  const { page, done } = await open();
  await signIn(page, TOKEN_READ_ONLY, '#documents');
  await page.waitForSelector('#doc-rows tr[data-id]');
  assert.equal(await page.isVisible('#upload-form'), false);
  assert.equal(await page.isVisible('#documents-note'), true);
  assert.equal(await page.locator('#doc-rows button.danger').count(), 0);
  await done();
});

// Records, in the page, when each step and the report appear.
async function watchTask(page) {
  await page.evaluate(() => {
    window.timeline = [];
    const steps = document.getElementById('task-steps');
    const report = document.getElementById('task-report');
    new MutationObserver(() => {
      const n = steps.querySelectorAll('li').length;
      if (n > window.timeline.filter((e) => e.kind === 'step').length) window.timeline.push({ kind: 'step', at: performance.now() });
    }).observe(steps, { childList: true });
    new MutationObserver(() => {
      if (!report.hidden && !window.timeline.some((e) => e.kind === 'report')) window.timeline.push({ kind: 'report', at: performance.now() });
    }).observe(report, { attributes: true, childList: true });
  });
}

async function runTask(page, skill, question) {
  await page.goto(`${URL}#tasks`);
  await page.selectOption('#skill', skill);
  await page.fill('#question', question);
  await page.click('#task-start');
}

test('a research task streams at least three steps before its report, whose citations open documents', async () => {
  const { page, done } = await open();
  await signIn(page, TOKEN, '#tasks');
  await page.waitForSelector('#task-form:not([hidden])');
  await watchTask(page);
  await runTask(page, 'research', 'What must happen when a person asks for erasure?');
  await page.waitForSelector('#task-state[data-state=completed]', { timeout: 60_000 });
  const timeline = await page.evaluate(() => window.timeline);
  const reportAt = timeline.find((e) => e.kind === 'report')?.at;
  assert.ok(reportAt, 'a report appeared');
  const before = timeline.filter((e) => e.kind === 'step' && e.at < reportAt);
  assert.ok(before.length >= 3, `${before.length} steps before the report`);
  // Streamed: the steps arrived over time, not in one piece with the report.
  assert.ok(reportAt - before[0].at > 200, `first step ${reportAt - before[0].at} ms before the report`);

  const cite = page.locator('#task-report button.cite.verified').first();
  const doc = await cite.getAttribute('data-doc');
  assert.ok(doc);
  await cite.click();
  await page.waitForFunction((id) => document.getElementById('doc-meta').textContent.startsWith(id), doc);
  await page.click('#doc-close');

  await page.waitForSelector('#task-rows tr[data-state=completed]');
  assert.match(await page.locator('#task-rows tr').first().textContent(), /research.*completed.*USD/);
  await done();
});

test('a running task can be cancelled', async () => {
  const { page, done } = await open();
  await signIn(page, TOKEN, '#tasks');
  await page.waitForSelector('#task-form:not([hidden])');
  await runTask(page, 'research', 'How fast must a breach be notified?');
  await page.waitForSelector('#task-steps li');
  await page.click('#task-cancel');
  await page.waitForSelector('#task-state[data-state=canceled]', { timeout: 30_000 });
  await page.waitForSelector('#task-rows tr[data-state=canceled]');
  assert.equal(await page.isVisible('#task-cancel'), false);
  await done();
});

test('a token without tasks:run cannot start tasks', async () => {
  const { page, done } = await open();
  await signIn(page, TOKEN_READ_ONLY, '#tasks');
  await page.waitForSelector('#tasks-note:not([hidden])');
  assert.equal(await page.isVisible('#task-form'), false);
  // Even a hand-made request is refused by the server, not only hidden by the page.
  const r = await fetch(`${ORIGIN}/a2a`, {
    method: 'POST',
    headers: { 'Authorization': `Bearer ${TOKEN_READ_ONLY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'message/send', params: { message: { kind: 'message', role: 'user', messageId: 'm', parts: [{ kind: 'text', text: 'hi' }] } } }),
  });
  const text = await r.text();
  assert.ok(r.status === 403 || /tasks:run/.test(text), `${r.status} ${text}`);
  await done();
});

const spent = (page) => page.locator('#gauge').getAttribute('data-spent');

test('the spend gauge moves when a task is charged, and warns at the tenant\'s level', async () => {
  const { page, done } = await open();
  await signIn(page, TOKEN, '#spend');
  await page.waitForSelector('#gauge svg');
  const beforeSpent = Number(await spent(page));
  assert.equal(await page.locator('#gauge svg').getAttribute('role'), 'img');

  await runTask(page, 'rag', 'What is the right to erasure?');
  await page.waitForSelector('#task-state[data-state=completed]', { timeout: 60_000 });

  await page.goto(`${URL}#spend`);
  await page.waitForSelector('#gauge svg');
  const afterSpent = Number(await spent(page));
  assert.ok(afterSpent > beforeSpent, `spent went from ${beforeSpent} to ${afterSpent}`);
  const ledger = Number(sql("SELECT sum(cost) FROM usage_ledger WHERE tenant_id = 'acme' AND period_start = paddock_budget_period()"));
  assert.equal(afterSpent, ledger);
  assert.equal(await page.isVisible('#spend-banner'), false);
  assert.equal(await page.locator('#trend rect.bar').count(), 30, 'a bar for each of the last 30 days');
  assert.match(await page.locator('#by-model svg').getAttribute('aria-label'), /small/);
  assert.match(await page.locator('#by-user svg').getAttribute('aria-label'), /alice/);

  // The tenant's warning level, then an exhausted budget.
  sql("UPDATE tenants SET warn_at_percent = 1 WHERE id = 'acme'");
  await page.reload();
  await page.waitForSelector('#spend-banner[data-level=warn]');
  assert.match(await page.textContent('#spend-banner'), /warning level is 1%/);
  sql(`UPDATE tenants SET budget_monthly = ${afterSpent} WHERE id = 'acme'`);
  await page.reload();
  await page.waitForSelector('#spend-banner[data-level=exhausted]');
  assert.match(await page.textContent('#spend-banner'), /exhausted/);
  sql("UPDATE tenants SET warn_at_percent = 80, budget_monthly = 25 WHERE id = 'acme'");
  await done();
});

function parseCsv(text) {
  const lines = text.trim().split('\r\n');
  return { header: lines[0], rows: lines.slice(1).map((l) => l.split(',')) };
}

test('the CSV and JSON exports hold exactly the ledger\'s entries', async () => {
  const { page, done } = await open();
  await signIn(page, TOKEN, '#spend');
  await page.waitForSelector('#spend-body:not([hidden])');
  const since = await page.inputValue('#since');
  const until = await page.inputValue('#until');
  const [csvDownload] = await Promise.all([
    page.waitForEvent('download'),
    page.click('#export-form button[value=csv]'),
  ]);
  const csv = parseCsv(readFileSync(await csvDownload.path(), 'utf8'));
  assert.equal(csv.header, 'id,at,user,model,task,input_tokens,output_tokens,cost,estimated');
  const ledger = sql(`SELECT id, user_id, model, coalesce(task_id::text, ''), input_tokens, output_tokens, cost, estimated
      FROM usage_ledger WHERE tenant_id = 'acme' AND created_at >= '${since}' AND created_at < '${until}' ORDER BY created_at, id`)
    .trim().split('\n').filter(Boolean).map((l) => l.split('\t'));
  assert.ok(ledger.length >= 2, 'the tasks above were charged');
  const norm = (r) => [r[0], r[1], r[2], r[3], r[4], r[5], String(Number(r[6])), r[7].startsWith('t') ? 'true' : 'false'];
  assert.deepEqual(csv.rows.map((r) => norm([r[0], r[2], r[3], r[4], r[5], r[6], r[7], r[8]])), ledger.map(norm));

  const [jsonDownload] = await Promise.all([
    page.waitForEvent('download'),
    page.click('#export-form button[value=json]'),
  ]);
  const json = JSON.parse(readFileSync(await jsonDownload.path(), 'utf8'));
  assert.equal(json.tenant, 'acme');
  assert.deepEqual(json.entries.map((e) => norm([String(e.id), e.user, e.model, e.task ?? '', String(e.inputTokens), String(e.outputTokens), e.cost, String(e.estimated)])), ledger.map(norm));
  await done();
});

test('a token of tenant globex sees nothing of tenant acme in any view', async () => {
  const { page, done } = await open();
  await signIn(page, TOKEN_OTHER);
  await search(page, 'right to be forgotten');
  assert.deepEqual(await hitIds(page), []);

  await page.goto(`${URL}#documents`);
  await page.waitForSelector('#doc-rows tr');
  assert.equal(await page.textContent('#doc-rows'), 'No documents yet.');

  await page.goto(`${URL}#tasks`);
  await page.waitForFunction(() => document.getElementById('task-rows').textContent.length > 0);
  assert.equal(await page.textContent('#task-rows'), 'No tasks yet.');

  await page.goto(`${URL}#spend`);
  await page.waitForSelector('#gauge svg');
  assert.equal(await spent(page), '0');
  assert.doesNotMatch(await page.locator('#by-user svg').getAttribute('aria-label'), /alice|bob/);

  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-form button[value=csv]')]);
  assert.equal(parseCsv(readFileSync(await download.path(), 'utf8')).rows.length, 0);

  // Asking for acme's document by its id finds nothing either.
  const body = await page.evaluate(async () => {
    const { tool } = await import('./js/api.js');
    try { return JSON.stringify(await tool('get_document', { id: 'gdpr-art-17' })); } catch (e) { return e.message; }
  });
  assert.doesNotMatch(body, /erasure/);
  await done();
});

test('a token without usage:read sees no spend', async () => {
  const { page, done, mcpNames } = await open();
  await signIn(page, TOKEN_NO_USAGE);
  assert.equal(await page.isVisible('#nav a[data-view=spend]'), false);
  await page.goto(`${URL}#spend`);
  await page.waitForSelector('#spend-denied:not([hidden])');
  assert.equal(await page.isVisible('#spend-body'), false);
  assert.equal(await page.locator('#gauge svg').count(), 0);
  assert.ok(!mcpNames.includes('usage'), 'the page did not even ask');
  // The server refuses the export too (asked from here: a refused request is logged in the page's console).
  const r = await fetch(`${URL}api/ledger`, { headers: { Authorization: `Bearer ${TOKEN_NO_USAGE}` } });
  assert.equal(r.status, 403);
  assert.match(r.headers.get('www-authenticate'), /insufficient_scope/);
  await done();
});

test('the console is usable from the keyboard alone', async () => {
  const { page, done } = await open();
  const focused = () => page.evaluate(() => document.activeElement.id || document.activeElement.textContent);
  // Tab until the element `what` says is focused, as a person would.
  const tabTo = async (what) => {
    for (let i = 0; i < 25; i++) {
      if (await page.evaluate(what)) return;
      await page.keyboard.press('Tab');
    }
    assert.fail(`never reached by Tab: ${what}`);
  };
  await page.goto(URL);
  assert.equal(await focused(), 'token', 'the token field has the focus');
  await page.keyboard.insertText(TOKEN);
  await page.keyboard.press('Tab');
  assert.equal(await focused(), 'Sign in');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#nav:not([hidden])');
  await tabTo(() => document.activeElement.dataset.view === 'tasks');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#tasks:not([hidden])');
  await tabTo(() => document.activeElement.dataset.view === 'search');
  await page.keyboard.press('Enter');
  await tabTo(() => document.activeElement.id === 'q');
  await page.keyboard.type('breach notification');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#hits li.hit');
  // The first hit's document opens from the keyboard, and Escape closes it.
  await tabTo(() => document.activeElement.closest('#hits li.hit h2') !== null);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#doc-dialog[open]');
  await page.keyboard.press('Escape');
  await page.waitForSelector('#doc-dialog:not([open])', { state: 'attached' });
  await done();
});

// Screenshots of the search, task and spend views at both sizes, each checked for what it must show and for
// fitting the width of the screen.
for (const [name, viewport] of [['desktop', DESKTOP], ['phone', PHONE]]) {
  test(`screenshots at ${viewport.width}x${viewport.height} show the search, task and spend views`, async () => {
    const { page, done } = await open(viewport);
    await signIn(page, TOKEN);
    const fits = () => page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);

    await search(page, 'right to be forgotten');
    await page.waitForSelector('#hits li.hit [data-arm=vector]');
    for (const sel of ['#q', '#mode', '#w-lexical', '#w-vector', '#hits li.hit h2', '#hits [data-arm=lexical]']) {
      assert.ok(await page.isVisible(sel), `search: ${sel}`);
    }
    assert.ok(await fits(), 'search fits the screen');
    await page.screenshot({ path: join(ARTIFACTS, `search-${name}.png`), fullPage: true });

    await page.goto(`${URL}#tasks`);
    await page.waitForSelector('#task-rows tr[data-state=completed]');
    await page.locator('#task-rows tr[data-state=completed] button').first().click();
    await page.waitForSelector('#task-report:not([hidden]) button.cite');
    for (const sel of ['#task-form', '#task-state', '#task-report h2', '#task-rows tr']) {
      assert.ok(await page.isVisible(sel), `tasks: ${sel}`);
    }
    assert.ok(await fits(), 'tasks fit the screen');
    await page.screenshot({ path: join(ARTIFACTS, `tasks-${name}.png`), fullPage: true });

    await page.goto(`${URL}#spend`);
    await page.waitForSelector('#gauge svg');
    for (const sel of ['#gauge svg', '#figures dd[data-figure=spent]', '#trend svg', '#by-model svg', '#by-user svg', '#export-form']) {
      assert.ok(await page.isVisible(sel), `spend: ${sel}`);
    }
    assert.ok(await fits(), 'spend fits the screen');
    await page.screenshot({ path: join(ARTIFACTS, `spend-${name}.png`), fullPage: true });
    await done();
  });
}

// Deposits `token` for a handover, as the demo does, and returns the code.
async function handover(token) {
  const r = await fetch(`${URL}api/handover`, {
    method: 'POST', headers: { 'Authorization': `Bearer ${token}`, 'Content-Type': 'application/json' }, body: '{}',
  });
  assert.equal(r.status, 201, await r.clone().text());
  const { code, expires_in: ttl } = await r.json();
  assert.ok(ttl > 0 && ttl <= 120, `lives ${ttl} s`);
  return code;
}

test('a handover link signs in once, and its code leaves the address bar', async () => {
  const code = await handover(TOKEN);
  const { page, done } = await open();
  const sent = [];
  page.on('request', (r) => sent.push(r.url()));
  await page.goto(`${URL}#code=${code}`);
  await page.waitForSelector('#nav:not([hidden])');
  assert.match(await page.textContent('#who-name'), /alice · acme/);
  assert.equal(page.url().includes(code), false, 'the code is cleared from the address');
  assert.equal(sent.some((u) => u.includes(code)), false, 'the code is in no request URL');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('paddock.console.token')), TOKEN);
  await done();

  // The same link again: the code is spent.
  const second = await open();
  await second.page.goto(`${URL}#code=${code}`);
  await second.page.waitForSelector('#signin-error:not([hidden])');
  assert.match(await second.page.textContent('#signin-error'), /unknown, already used or expired/);
  assert.equal(await second.page.isHidden('#nav'), true);
  assert.equal(second.page.url().includes(code), false);
  await second.done([/status of 400 \(Bad Request\)/]);
});

// Signs in through the stand-in authorization server; returns the requests' URLs.
async function oauthSignIn(page) {
  const urls = [];
  page.on('request', (r) => urls.push(r.url()));
  await page.goto(URL);
  await page.waitForSelector('#oauth:not([hidden])');
  assert.equal((await page.textContent('#oauth-signin')).trim(), `Sign in with ${new globalThis.URL(OAUTH_URL).host}`);
  await page.click('#oauth-signin');
  return urls;
}

test('OAuth sign-in with PKCE goes through the authorization server and keeps the token out of every URL', async () => {
  const { page, done } = await open();
  const urls = await oauthSignIn(page);
  await page.waitForSelector('#nav:not([hidden])');
  assert.match(await page.textContent('#who-name'), /olivia · acme/);
  const authorize = new globalThis.URL(urls.find((u) => u.startsWith(`${OAUTH_URL}/authorize`)));
  const q = authorize.searchParams;
  assert.equal(q.get('code_challenge_method'), 'S256');
  assert.match(q.get('code_challenge'), /^[A-Za-z0-9_-]{43}$/);
  assert.equal(q.get('client_id'), 'paddock-console');
  assert.equal(q.get('redirect_uri'), URL);
  assert.equal(q.has('code_verifier'), false);
  // The callback's code and state are gone from the address; the sign-in under way is forgotten.
  assert.equal(page.url(), `${URL}#search`);
  const token = await page.evaluate(() => sessionStorage.getItem('paddock.console.token'));
  assert.ok(token.split('.').length === 3);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('paddock.console.oauth')), null);
  assert.equal(urls.some((u) => u.includes(token) || u.includes(token.split('.')[2])), false);
  // The token works like any other: search answers.
  await search(page, 'right to be forgotten');
  assert.equal((await hitIds(page))[0], 'gdpr-art-17');
  await done();
});

test('a wrong code verifier is refused by the authorization server, and the console says so', async () => {
  const { page, context, done } = await open();
  // When the answer comes back, another verifier than the one whose hash was sent stands in the tab.
  await context.addInitScript(() => {
    const key = 'paddock.console.oauth';
    const pending = sessionStorage.getItem(key);
    if (pending && location.search.includes('code=')) {
      const p = JSON.parse(pending);
      p.verifier = 'x'.repeat(43);
      sessionStorage.setItem(key, JSON.stringify(p));
    }
  });
  await oauthSignIn(page);
  await page.waitForSelector('#signin-error:not([hidden])');
  assert.match(await page.textContent('#signin-error'), /did not issue a token: the code verifier does not match/);
  assert.equal(await page.isHidden('#nav'), true);
  assert.doesNotMatch(page.url(), /code=|state=/);
  await done([/status of 400 \(Bad Request\)/]);
});

test('a replayed authorization code and a mismatched state are refused', async () => {
  const { page, context, done } = await open();
  // Keep a copy of the sign-in under way and note the callback's address, to replay them later.
  await context.addInitScript(() => {
    const pending = sessionStorage.getItem('paddock.console.oauth');
    if (pending && location.search.includes('code=')) {
      sessionStorage.setItem('test.pending', pending);
      sessionStorage.setItem('test.callback', location.href);
    }
  });
  await oauthSignIn(page);
  await page.waitForSelector('#nav:not([hidden])');
  const [pending, callback] = await page.evaluate(() => [sessionStorage.getItem('test.pending'), sessionStorage.getItem('test.callback')]);
  assert.match(callback, /\?code=.*state=/);
  await page.click('#sign-out');
  await page.waitForSelector('#signin:not([hidden])');

  // The same code with its own verifier and state, a second time.
  await page.evaluate((p) => sessionStorage.setItem('paddock.console.oauth', p), pending);
  await page.goto(callback);
  await page.waitForSelector('#signin-error:not([hidden])');
  assert.match(await page.textContent('#signin-error'), /did not issue a token: the code was already used/);
  assert.equal(await page.isHidden('#nav'), true);

  // An answer for a sign-in this tab did not start (another state): refused before any exchange.
  await page.evaluate((p) => sessionStorage.setItem('paddock.console.oauth', p), pending);
  const exchanges = [];
  page.on('request', (r) => { if (r.url().startsWith(`${OAUTH_URL}/token`)) exchanges.push(r.url()); });
  const forged = new globalThis.URL(callback);
  forged.searchParams.set('state', 'not-the-state-this-tab-sent');
  await page.goto(forged.href);
  await page.waitForSelector('#signin-error:not([hidden])');
  assert.match(await page.textContent('#signin-error'), /state does not match/);
  assert.deepEqual(exchanges, []);
  assert.equal(await page.isHidden('#nav'), true);
  await done([/status of 400 \(Bad Request\)/]);
});

test('the stand-in authorization server holds its client, redirect URI and challenge', async () => {
  const authorize = (params) => fetch(`${OAUTH_URL}/authorize?${new URLSearchParams({
    response_type: 'code', client_id: 'paddock-console', redirect_uri: URL, state: 's',
    code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256', ...params,
  })}`, { redirect: 'manual' });
  assert.equal((await authorize({ client_id: 'someone-else' })).status, 400);
  assert.equal((await authorize({ redirect_uri: 'https://evil.example/console/' })).status, 400);
  const plain = new globalThis.URL((await authorize({ code_challenge_method: 'plain' })).headers.get('location'));
  assert.equal(plain.searchParams.get('error'), 'invalid_request');
  const ok = new globalThis.URL((await authorize({})).headers.get('location'));
  const code = ok.searchParams.get('code');
  const exchange = (params) => fetch(`${OAUTH_URL}/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code', code, client_id: 'paddock-console', redirect_uri: URL,
      code_verifier: 'dBjftJeZ4CVP-mJ0K5gQ3oT8sBQ9zwzAyJQkqRBF2Ow', ...params,
    }),
  });
  // RFC 7636 appendix B's pair; any presentation spends the code, so the wrong redirect URI spends it.
  const wrong = await exchange({ redirect_uri: 'https://evil.example/console/' });
  assert.equal(wrong.status, 400);
  assert.equal((await wrong.json()).error, 'invalid_grant');
  assert.match((await (await exchange({})).json()).error_description, /already used/);
});

test('a task being watched streams again after a reload, to its report', async () => {
  const { page, done } = await open();
  await signIn(page, TOKEN, '#tasks');
  await page.waitForSelector('#task-form:not([hidden])');
  await runTask(page, 'research', '(take your time) What must a controller do when asked to erase data?');
  await page.waitForSelector('#task-steps li');
  const id = await page.evaluate(() => sessionStorage.getItem('paddock.console.watching'));
  assert.ok(id, 'the watched task is remembered');
  await page.reload();
  await page.waitForSelector('#task-steps li[data-step=resumed]');
  await watchTask(page);
  assert.equal(await page.isHidden('#task-report'), true, 'the report had not arrived before the reload');
  await page.waitForSelector('#task-state[data-state=completed]', { timeout: 60_000 });
  const timeline = await page.evaluate(() => window.timeline);
  const reportAt = timeline.find((e) => e.kind === 'report')?.at;
  assert.ok(reportAt, 'the report arrived after the reload');
  assert.ok(timeline.some((e) => e.kind === 'step' && e.at < reportAt), 'further steps arrived before it');
  assert.ok(id.startsWith(await page.textContent('#task-id')));
  assert.equal(await page.evaluate(() => sessionStorage.getItem('paddock.console.watching')), null);
  await done();
});
