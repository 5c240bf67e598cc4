// The console's only way to the lab: the public HTTP API, with a bearer token.
// The token lives in sessionStorage (gone when the tab closes), never in a URL.

const TOKEN_KEY = 'annotrain.token';
const BANNER_HEADER = 'X-Annotrain-Cost-Banner';

let apiBase = '/api/v1';
const listeners = new Set();
const state = { banner: null, signedOut: false };

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `the lab answered ${status}`);
    this.status = status;
    this.code = error.code || 'http_' + status;
    this.field = error.field || null;
    this.details = Array.isArray(error.details) ? error.details : [];
  }
}

export function setApiBase(base) {
  apiBase = base.replace(/\/$/, '');
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function signIn(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
  state.signedOut = false;
  notify();
}

export function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  state.banner = null;
  notify();
}

/** Subscribe to the banner and sign-in state; returns the unsubscribe. */
export function watch(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function banner() {
  return state.banner;
}

function notify() {
  for (const listener of listeners) listener();
}

function url(path, query) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query || {})) {
    if (value === undefined || value === null || value === '') continue;
    for (const item of Array.isArray(value) ? value : [value]) params.append(key, String(item));
  }
  const text = params.toString();
  return apiBase + path + (text ? '?' + text : '');
}

/**
 * Call the API. `json` sends a JSON body, `form` a FormData; `as` is 'json'
 * (default), 'text' or 'blob'. Errors throw ApiError with the API's code,
 * message and field.
 */
export async function call(method, path, { json, form, query, as = 'json', auth } = {}) {
  const headers = { Accept: as === 'json' ? 'application/json' : '*/*' };
  const bearer = auth || token();
  if (bearer) headers.Authorization = 'Bearer ' + bearer;
  let body;
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (form) {
    body = form;
  }
  let response;
  try {
    response = await fetch(url(path, query), { method, headers, body, credentials: 'omit' });
  } catch (exc) {
    throw new ApiError(0, { error: { code: 'network', message: 'the lab could not be reached: ' + exc.message } });
  }
  const banner = response.headers.get(BANNER_HEADER);
  if (banner !== state.banner && (banner || path !== '/system' || response.ok)) {
    state.banner = banner;
    notify();
  }
  if (!response.ok) {
    let payload = null;
    try {
      payload = await response.json();
    } catch {
      payload = null;
    }
    const error = new ApiError(response.status, payload);
    if (response.status === 401 && !auth) {
      sessionStorage.removeItem(TOKEN_KEY);
      state.signedOut = true;
      notify();
    }
    throw error;
  }
  if (response.status === 204) return null;
  if (as === 'text') return response.text();
  if (as === 'blob') return response.blob();
  return response.json();
}

export function wasSignedOut() {
  return state.signedOut;
}

/** Download an API file (with the token) and hand it to the browser as a file. */
export async function download(path, query, filename) {
  const blob = await call('GET', path, { query, as: 'blob' });
  const link = document.createElement('a');
  link.href = URL.createObjectURL(blob);
  link.download = filename;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}
