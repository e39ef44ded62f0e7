// Sign-in with a pasted token: the token is checked by listing the server's tools with it, then kept in
// session storage (see api.js). The address bar never holds it.
import { $, showError } from './dom.js';
import * as api from './api.js';

export function initSignin(onSignedIn) {
  $('signin-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const t = $('token').value.trim();
    showError($('signin-error'), null);
    if (!/^[A-Za-z0-9\-._~+/]+=*$/.test(t)) {
      showError($('signin-error'), new Error('That is not a token: paste the whole access token, without spaces.'));
      return;
    }
    api.setToken(t);
    try {
      const offered = await api.tools();
      $('token').value = '';
      onSignedIn(offered);
    } catch (err) {
      api.setToken('');
      showError($('signin-error'), err);
    }
  });
}
