// A small OAuth 2.1 authorization server for the console's browser tests, on loopback: the public client
// PADDOCK_OAUTH_CLIENT_ID with its one redirect URI PADDOCK_OAUTH_REDIRECT_URI, the authorization-code grant
// with PKCE (S256 only), and access tokens signed ES256 with the development key the runtime under test
// trusts (PADDOCK_OAUTH_KEY, its kid from PADDOCK_OAUTH_JWKS), issued for PADDOCK_OAUTH_TENANT and
// PADDOCK_OAUTH_USER with the requested scopes among PADDOCK_OAUTH_SCOPE. Its one user is always signed in and
// always consents, so /authorize answers at once with a redirect.
//
// What it holds to, as a real one must: metadata at /.well-known/oauth-authorization-server (RFC 8414); an
// unknown client or redirect URI gets an error page, never a redirect; a code lives 60 s, is bound to its
// client, redirect URI and code challenge, and works once (any presentation spends it); the verifier must
// hash to the challenge. Prints its issuer URL on stdout.
import http from 'node:http';
import { createHash, createPrivateKey, randomBytes, randomUUID, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const CLIENT_ID = env('PADDOCK_OAUTH_CLIENT_ID');
const REDIRECT_URI = env('PADDOCK_OAUTH_REDIRECT_URI');
const AUDIENCE = env('PADDOCK_OAUTH_AUDIENCE');
const TENANT = env('PADDOCK_OAUTH_TENANT');
const USER = env('PADDOCK_OAUTH_USER');
const ALLOWED = new Set(env('PADDOCK_OAUTH_SCOPE').split(' '));
const KEY = createPrivateKey(readFileSync(env('PADDOCK_OAUTH_KEY')));
const KID = JSON.parse(readFileSync(env('PADDOCK_OAUTH_JWKS'), 'utf8')).keys[0].kid;
const CONSOLE_ORIGIN = new URL(REDIRECT_URI).origin;
const CODE_TTL_MS = 60_000;
const TOKEN_TTL_S = 600;
// The order of P-256: an ES256 signature is sent with the low s of the pair (s, n - s).
const N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;

let issuer = '';
const codes = new Map(); // code -> { redirectUri, challenge, scope, expires, spent }

const b64url = (buf) => Buffer.from(buf).toString('base64url');

function jwt(claims) {
  const header = b64url(JSON.stringify({ alg: 'ES256', typ: 'at+jwt', kid: KID }));
  const body = b64url(JSON.stringify(claims));
  const sig = sign('sha256', Buffer.from(`${header}.${body}`), { key: KEY, dsaEncoding: 'ieee-p1363' });
  let s = BigInt(`0x${sig.subarray(32).toString('hex')}`);
  if (s > N / 2n) s = N - s;
  const low = Buffer.concat([sig.subarray(0, 32), Buffer.from(s.toString(16).padStart(64, '0'), 'hex')]);
  return `${header}.${body}.${b64url(low)}`;
}

function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'cache-control': 'no-store', ...headers });
  res.end(body);
}

function json(res, status, value, cors = false) {
  send(res, status, JSON.stringify(value), {
    'content-type': 'application/json',
    ...(cors ? { 'access-control-allow-origin': CONSOLE_ORIGIN, vary: 'Origin' } : {}),
  });
}

const tokenError = (res, error, description) => json(res, 400, { error, error_description: description }, true);

function metadata() {
  return {
    issuer,
    authorization_endpoint: `${issuer}/authorize`,
    token_endpoint: `${issuer}/token`,
    response_types_supported: ['code'],
    grant_types_supported: ['authorization_code'],
    code_challenge_methods_supported: ['S256'],
    token_endpoint_auth_methods_supported: ['none'],
    scopes_supported: [...ALLOWED],
    authorization_response_iss_parameter_supported: true,
  };
}

function authorize(res, q) {
  // Without a known client and its exact redirect URI, nothing may be sent anywhere (RFC 6749 4.1.2.1).
  if (q.get('client_id') !== CLIENT_ID || q.get('redirect_uri') !== REDIRECT_URI) {
    send(res, 400, 'unknown client or redirect URI', { 'content-type': 'text/plain' });
    return;
  }
  const back = (params) => {
    const u = new URL(REDIRECT_URI);
    for (const [k, v] of Object.entries({ ...params, state: q.get('state') ?? undefined, iss: issuer })) {
      if (v !== undefined) u.searchParams.set(k, v);
    }
    send(res, 302, '', { location: u.href });
  };
  if (q.get('response_type') !== 'code') {
    back({ error: 'unsupported_response_type', error_description: 'only code is supported' });
    return;
  }
  const challenge = q.get('code_challenge') ?? '';
  if (q.get('code_challenge_method') !== 'S256' || !/^[A-Za-z0-9_-]{43}$/.test(challenge)) {
    back({ error: 'invalid_request', error_description: 'PKCE with S256 is required' });
    return;
  }
  const scope = (q.get('scope') ?? '').split(' ').filter((s) => ALLOWED.has(s)).join(' ');
  const code = b64url(randomBytes(32));
  codes.set(code, { redirectUri: REDIRECT_URI, challenge, scope, expires: Date.now() + CODE_TTL_MS, spent: false });
  back({ code });
}

function token(res, form) {
  if (form.get('grant_type') !== 'authorization_code') {
    tokenError(res, 'unsupported_grant_type', 'only authorization_code is supported');
    return;
  }
  if (form.get('client_id') !== CLIENT_ID) {
    json(res, 401, { error: 'invalid_client', error_description: 'unknown client' }, true);
    return;
  }
  const code = form.get('code') ?? '';
  const grant = codes.get(code);
  if (!grant) {
    tokenError(res, 'invalid_grant', 'the code is unknown');
    return;
  }
  if (grant.spent) {
    tokenError(res, 'invalid_grant', 'the code was already used');
    return;
  }
  grant.spent = true;
  if (Date.now() > grant.expires) {
    tokenError(res, 'invalid_grant', 'the code has expired');
    return;
  }
  if (form.get('redirect_uri') !== grant.redirectUri) {
    tokenError(res, 'invalid_grant', 'the redirect URI differs from the authorization request');
    return;
  }
  const verifier = form.get('code_verifier') ?? '';
  if (!/^[A-Za-z0-9._~-]{43,128}$/.test(verifier)
    || b64url(createHash('sha256').update(verifier).digest()) !== grant.challenge) {
    tokenError(res, 'invalid_grant', 'the code verifier does not match the code challenge');
    return;
  }
  const now = Math.floor(Date.now() / 1000);
  const access = jwt({
    iss: issuer, aud: AUDIENCE, sub: USER, tenant_id: TENANT, scope: grant.scope, client_id: CLIENT_ID,
    iat: now, nbf: now, exp: now + TOKEN_TTL_S, jti: randomUUID(),
  });
  json(res, 200, { access_token: access, token_type: 'Bearer', expires_in: TOKEN_TTL_S, scope: grant.scope }, true);
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, issuer);
  if (req.method === 'GET' && url.pathname === '/.well-known/oauth-authorization-server') {
    send(res, 200, JSON.stringify(metadata()), { 'content-type': 'application/json', 'access-control-allow-origin': '*' });
  } else if (req.method === 'GET' && url.pathname === '/authorize') {
    authorize(res, url.searchParams);
  } else if (req.method === 'OPTIONS' && url.pathname === '/token') {
    send(res, 204, '', {
      'access-control-allow-origin': CONSOLE_ORIGIN, 'access-control-allow-methods': 'POST',
      'access-control-allow-headers': 'content-type, accept', vary: 'Origin',
    });
  } else if (req.method === 'POST' && url.pathname === '/token') {
    let body = '';
    req.on('data', (c) => { body += c; if (body.length > 8192) req.destroy(); });
    req.on('end', () => {
      if (!String(req.headers['content-type']).startsWith('application/x-www-form-urlencoded')) {
        tokenError(res, 'invalid_request', 'the body must be application/x-www-form-urlencoded');
        return;
      }
      token(res, new URLSearchParams(body));
    });
  } else {
    send(res, 404, 'not found', { 'content-type': 'text/plain' });
  }
});
server.listen(0, '127.0.0.1', () => {
  issuer = `http://127.0.0.1:${server.address().port}`;
  console.log(issuer);
});
