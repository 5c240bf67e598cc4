// Sign-in with the Cognito hosted UI: the authorization code flow with PKCE
// (RFC 7636), entirely in the browser; the app client has no secret. The verifier
// and state wait in sessionStorage while the browser is away at Cognito; the
// code comes back in the query and is removed from the address at once.

const PENDING_KEY = 'annotrain.pkce';

function base64url(bytes) {
  let text = '';
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function randomText(size) {
  return base64url(crypto.getRandomValues(new Uint8Array(size)));
}

/** Where Cognito sends the browser back: this page, without query or hash. */
export function redirectUri() {
  return location.origin + location.pathname;
}

/** Go to the hosted UI to sign in. */
export async function startSignIn(cognito) {
  const verifier = randomText(48);
  const state = randomText(24);
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  sessionStorage.setItem(PENDING_KEY, JSON.stringify({ verifier, state }));
  const params = new URLSearchParams({
    response_type: 'code',
    client_id: cognito.client_id,
    redirect_uri: redirectUri(),
    scope: cognito.scopes.join(' '),
    state,
    code_challenge: base64url(new Uint8Array(digest)),
    code_challenge_method: 'S256',
  });
  location.assign(`${cognito.domain}/oauth2/authorize?${params}`);
}

/**
 * Finish a sign-in the hosted UI sent back here: check the state, trade the code
 * and verifier for tokens. Returns the access token, null when there is nothing
 * to finish; throws an Error that says what went wrong.
 */
export async function finishSignIn(cognito) {
  const query = new URLSearchParams(location.search);
  if (!query.has('code') && !query.has('error')) return null;
  const pending = JSON.parse(sessionStorage.getItem(PENDING_KEY) || 'null');
  sessionStorage.removeItem(PENDING_KEY);
  // The code must not stay in the address bar or the history.
  history.replaceState(null, '', redirectUri() + location.hash);
  if (query.has('error')) {
    throw new Error(`Cognito refused the sign-in: ${query.get('error_description') || query.get('error')}`);
  }
  if (!pending || pending.state !== query.get('state')) {
    throw new Error('this sign-in was not started here (its state does not match): sign in again');
  }
  const body = new URLSearchParams({
    grant_type: 'authorization_code',
    client_id: cognito.client_id,
    code: query.get('code'),
    redirect_uri: redirectUri(),
    code_verifier: pending.verifier,
  });
  let response;
  try {
    response = await fetch(`${cognito.domain}/oauth2/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body,
      credentials: 'omit',
    });
  } catch (exc) {
    throw new Error(`Cognito could not be reached: ${exc.message}`);
  }
  const tokens = await response.json().catch(() => ({}));
  if (!response.ok || !tokens.access_token) {
    throw new Error(`Cognito did not give a token: ${tokens.error_description || tokens.error || response.status}`);
  }
  return tokens.access_token;
}
