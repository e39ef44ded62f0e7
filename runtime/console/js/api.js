// The console's only way to the server: MCP tool calls (the stateless era, one POST per call), A2A JSON-RPC
// calls and streams, and the ledger export. Every request carries the token in the Authorization header and
// nowhere else; the token lives in this tab's session storage and in memory.

const KEY = 'paddock.console.token';
const MCP_VERSION = '2026-07-28';
let token = sessionStorage.getItem(KEY) || '';

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

export function getToken() { return token; }

export function setToken(t) {
  token = t;
  if (t) sessionStorage.setItem(KEY, t); else sessionStorage.removeItem(KEY);
}

// The token's claims, read without verifying them: only to show who is signed in and which views apply.
// The server verifies the token on every request and enforces the scopes itself.
export function claims() {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = decodeURIComponent(Array.from(atob(part), (c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0')).join(''));
    return JSON.parse(json);
  } catch {
    return {};
  }
}

export function scopes() {
  const c = claims();
  const s = c.scope ?? c.scp ?? '';
  return new Set(Array.isArray(s) ? s : String(s).split(' ').filter(Boolean));
}

async function post(path, headers, body, signal) {
  let resp;
  try {
    resp = await fetch(path, {
      method: 'POST',
      headers: { 'Authorization': `Bearer ${token}`, 'Content-Type': 'application/json', ...headers },
      body: JSON.stringify(body),
      signal,
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError('The server could not be reached.', 0);
  }
  return resp;
}

async function failure(resp) {
  let message = `The server answered ${resp.status}.`;
  try {
    const body = await resp.json();
    message = body.error_description || body.error?.message || message;
  } catch { /* keep the status */ }
  if (resp.status === 401) message = `Not signed in: ${message}`;
  return new ApiError(message, resp.status);
}

let nextId = 1;

function mcpBody(method, params) {
  return {
    jsonrpc: '2.0', id: nextId++, method,
    params: {
      ...params,
      _meta: {
        'io.modelcontextprotocol/protocolVersion': MCP_VERSION,
        'io.modelcontextprotocol/clientCapabilities': {},
        'io.modelcontextprotocol/clientInfo': { name: 'paddock-console', version: '1' },
      },
    },
  };
}

const mcpHeaders = (method, name) => ({
  'Accept': 'application/json, text/event-stream',
  'MCP-Protocol-Version': MCP_VERSION,
  'Mcp-Method': method,
  ...(name ? { 'Mcp-Name': name } : {}),
});

// Calls an MCP tool and returns its structured result; a tool error or a refusal throws ApiError.
export async function tool(name, args = {}) {
  const resp = await post('../mcp', mcpHeaders('tools/call', name), mcpBody('tools/call', { name, arguments: args }));
  if (!resp.ok) throw await failure(resp);
  const msg = await resp.json();
  if (msg.error) throw new ApiError(msg.error.message, resp.status);
  const r = msg.result;
  if (r.isError) throw new ApiError(r.content?.map((c) => c.text).join(' ') || 'The tool failed.', resp.status);
  return r.structuredContent ?? JSON.parse(r.content[0].text);
}

// The tools this server offers to this token (also checks the token).
export async function tools() {
  const resp = await post('../mcp', mcpHeaders('tools/list'), mcpBody('tools/list', {}));
  if (!resp.ok) throw await failure(resp);
  const msg = await resp.json();
  if (msg.error) throw new ApiError(msg.error.message, resp.status);
  return msg.result.tools.map((t) => t.name);
}

// One A2A JSON-RPC call (A2A 0.3 method names).
export async function a2a(method, params) {
  const resp = await post('../a2a', {}, { jsonrpc: '2.0', id: nextId++, method, params });
  if (!resp.ok) throw await failure(resp);
  const msg = await resp.json();
  if (msg.error) throw new ApiError(msg.error.message, resp.status);
  return msg.result;
}

// Starts an A2A task over SSE (`message/stream`), or follows a running one again (`tasks/resubscribe`), and
// calls onEvent with each result until the stream ends.
export async function a2aStream(params, onEvent, signal, method = 'message/stream') {
  const resp = await post('../a2a', { 'Accept': 'text/event-stream' },
    { jsonrpc: '2.0', id: nextId++, method, params }, signal);
  if (!resp.ok) throw await failure(resp);
  if (!resp.headers.get('content-type')?.startsWith('text/event-stream')) {
    const msg = await resp.json();
    throw new ApiError(msg.error?.message || 'The task was not started.', resp.status);
  }
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
      if (!data) continue;
      const msg = JSON.parse(data);
      if (msg.error) throw new ApiError(msg.error.message, resp.status);
      onEvent(msg.result);
    }
  }
}

// The usage ledger over [since, until) as a Blob (csv or json).
export async function ledger(since, until, format) {
  const q = new URLSearchParams({ since, until, format });
  let resp;
  try {
    resp = await fetch(`api/ledger?${q}`, {
      headers: { 'Authorization': `Bearer ${token}` }, cache: 'no-store', credentials: 'omit',
    });
  } catch {
    throw new ApiError('The server could not be reached.', 0);
  }
  if (!resp.ok) throw await failure(resp);
  return resp.blob();
}

// A JSON document of this origin or of the authorization server, without credentials; null when absent.
export async function fetchJson(url) {
  let resp;
  try {
    resp = await fetch(url, { cache: 'no-store', credentials: 'omit', headers: { 'Accept': 'application/json' } });
  } catch {
    return null;
  }
  if (!resp.ok) return null;
  try { return await resp.json(); } catch { return null; }
}

// Redeems a handover code (from the link's fragment) for the token it carries, once.
export async function redeemHandover(code) {
  let resp;
  try {
    resp = await fetch('api/handover/redeem', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ code }),
      cache: 'no-store', credentials: 'omit',
    });
  } catch {
    throw new ApiError('The server could not be reached.', 0);
  }
  if (!resp.ok) throw await failure(resp);
  return (await resp.json()).access_token;
}
