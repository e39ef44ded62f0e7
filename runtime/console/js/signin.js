// Sign-in, three ways, none of which puts a token in a URL:
// - a pasted token, checked by listing the server's tools with it;
// - a handover link (`#code=...`): the code is read from the fragment, which browsers never send to a server,
//   cleared from the address bar at once, and redeemed once for the token (`POST api/handover/redeem`);
// - OAuth 2.1 authorization code with PKCE (S256), when the runtime names a client id (`api/config`) and the
//   authorization server's metadata (RFC 8414, else OpenID Connect discovery) offers an authorization endpoint,
//   a token endpoint and S256. The state and the code verifier wait in this tab's session storage; the
//   answer's state must match, its code and state are cleared from the address bar, and the code is exchanged
//   with the verifier by a POST to the token endpoint.
// The token then lives in memory and this tab's session storage only (see api.js).
import { $, show, showError } from './dom.js';
import * as api from './api.js';

const PENDING = 'paddock.console.oauth';

let oauth = null; // { clientId, scope, issuer, authorizationEndpoint, tokenEndpoint, resource }

function b64url(bytes) {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

const randomString = (n) => b64url(crypto.getRandomValues(new Uint8Array(n)));

async function s256(text) {
  return b64url(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text))));
}

// This page's address without query or fragment: the redirect URI registered for the console.
const redirectUri = () => `${location.origin}${location.pathname}`;

function httpUrl(s) {
  try {
    const u = new URL(s);
    return u.protocol === 'https:' || u.protocol === 'http:' ? u : null;
  } catch {
    return null;
  }
}

// RFC 8414 section 3.1: the well-known path goes between the host and the issuer's path.
function metadataUrls(issuer) {
  const u = new URL(issuer);
  const path = u.pathname === '/' ? '' : u.pathname.replace(/\/$/, '');
  return [
    `${u.origin}/.well-known/oauth-authorization-server${path}`,
    `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`,
  ];
}

// What the sign-in needs, or null (no client id, no authorization server, or one without PKCE S256).
async function discover() {
  const cfg = (await api.fetchJson('api/config'))?.oauth;
  if (!cfg?.client_id || !httpUrl(cfg.authorization_server)) return null;
  const prm = await api.fetchJson('../.well-known/oauth-protected-resource');
  if (!(prm?.authorization_servers ?? []).includes(cfg.authorization_server)) return null;
  const issuer = cfg.authorization_server;
  for (const url of metadataUrls(issuer)) {
    const meta = await api.fetchJson(url);
    if (!meta) continue;
    // RFC 8414 section 3.3: the metadata must name the issuer it was fetched for.
    if (meta.issuer !== issuer) return null;
    const authz = httpUrl(meta.authorization_endpoint);
    const token = httpUrl(meta.token_endpoint);
    const pkce = (meta.code_challenge_methods_supported ?? []).includes('S256');
    const code = !meta.response_types_supported || meta.response_types_supported.includes('code');
    // The console's policy lets it reach the authorization server's origin only.
    if (!authz || !token || !pkce || !code || token.origin !== new URL(issuer).origin) return null;
    return {
      clientId: cfg.client_id, scope: cfg.scope, issuer, resource: prm.resource,
      authorizationEndpoint: authz.href, tokenEndpoint: token.href,
    };
  }
  return null;
}

async function startOAuth() {
  const state = randomString(16);
  const verifier = randomString(32);
  sessionStorage.setItem(PENDING, JSON.stringify({
    state, verifier, issuer: oauth.issuer, tokenEndpoint: oauth.tokenEndpoint, clientId: oauth.clientId,
    redirectUri: redirectUri(),
  }));
  const u = new URL(oauth.authorizationEndpoint);
  const q = u.searchParams;
  q.set('response_type', 'code');
  q.set('client_id', oauth.clientId);
  q.set('redirect_uri', redirectUri());
  if (oauth.scope) q.set('scope', oauth.scope);
  q.set('state', state);
  q.set('code_challenge', await s256(verifier));
  q.set('code_challenge_method', 'S256');
  if (oauth.resource) q.set('resource', oauth.resource);
  location.assign(u.href);
}

class SignInError extends Error {}

// The authorization server's answer in the address (`?code=&state=` or `?error=&state=`), if there is one.
async function finishOAuth(params) {
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || 'null');
  sessionStorage.removeItem(PENDING);
  if (!pending || !params.get('state') || params.get('state') !== pending.state) {
    throw new SignInError('The sign-in answer does not belong to a sign-in started in this tab (its state does not match). Sign in again.');
  }
  if (params.has('iss') && params.get('iss') !== pending.issuer) {
    throw new SignInError('The sign-in answer came from another authorization server. Sign in again.');
  }
  if (params.has('error')) {
    const why = params.get('error_description') || params.get('error');
    throw new SignInError(`The authorization server refused the sign-in: ${why}`);
  }
  const body = new URLSearchParams({
    grant_type: 'authorization_code', code: params.get('code') ?? '', redirect_uri: pending.redirectUri,
    client_id: pending.clientId, code_verifier: pending.verifier,
  });
  let resp;
  try {
    resp = await fetch(pending.tokenEndpoint, {
      method: 'POST', body, cache: 'no-store', credentials: 'omit',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'Accept': 'application/json' },
    });
  } catch {
    throw new SignInError('The authorization server could not be reached to finish the sign-in.');
  }
  let answer = {};
  try { answer = await resp.json(); } catch { /* keep the status */ }
  if (!resp.ok || !answer.access_token) {
    const why = answer.error_description || answer.error || `it answered ${resp.status}`;
    throw new SignInError(`The authorization server did not issue a token: ${why}. Sign in again.`);
  }
  if (String(answer.token_type).toLowerCase() !== 'bearer') {
    throw new SignInError('The authorization server issued a token of another type than Bearer.');
  }
  return answer.access_token;
}

async function useToken(t, onSignedIn) {
  api.setToken(t);
  try {
    const offered = await api.tools();
    onSignedIn(offered);
  } catch (err) {
    api.setToken('');
    throw err;
  }
}

// Finishes a sign-in the address carries (a handover code or an authorization server's answer), after taking
// it out of the address bar.
async function finishFromAddress(onSignedIn) {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const query = new URLSearchParams(location.search);
  if (fragment.has('code')) {
    const code = fragment.get('code');
    history.replaceState(null, '', location.pathname);
    $('signin-status').textContent = 'Signing in with the handed-over link…';
    return useToken(await api.redeemHandover(code), onSignedIn);
  }
  if (query.has('state') || query.has('code') || query.has('error')) {
    history.replaceState(null, '', location.pathname);
    $('signin-status').textContent = 'Finishing the sign-in…';
    return useToken(await finishOAuth(query), onSignedIn);
  }
  return null;
}

export function initSignin(onSignedIn) {
  $('signin-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const t = $('token').value.trim();
    showError($('signin-error'), null);
    if (!/^[A-Za-z0-9\-._~+/]+=*$/.test(t)) {
      showError($('signin-error'), new Error('That is not a token: paste the whole access token, without spaces.'));
      return;
    }
    try {
      await useToken(t, onSignedIn);
      $('token').value = '';
    } catch (err) {
      showError($('signin-error'), err);
    }
  });
  $('oauth-signin').addEventListener('click', () => {
    showError($('signin-error'), null);
    startOAuth().catch((err) => showError($('signin-error'), err));
  });
  finishFromAddress(onSignedIn)
    .catch((err) => showError($('signin-error'), err))
    .finally(() => { $('signin-status').textContent = ''; });
  discover().then((found) => {
    oauth = found;
    if (!found) return;
    $('oauth-issuer').textContent = new URL(found.issuer).host;
    show($('oauth'));
  }).catch(() => { /* no OAuth sign-in: the token form remains */ });
}
