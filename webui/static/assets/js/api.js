// The HTTP API client. The bearer token lives in this module's memory only:
// never in a URL, a cookie, localStorage or sessionStorage, so no other
// page, origin or later visitor of this browser can read it, and a reload
// or logout forgets it.

let token = '';
let lost = () => {};

/** setToken keeps the caller's token (empty: none). */
export function setToken(t) { token = t || ''; }

/** signedIn says whether a token is held. */
export function signedIn() { return token !== ''; }

/** onSessionLost registers what to do when the API answers 401 to a held token. */
export function onSessionLost(fn) { lost = fn; }

/** APIError is a non-2xx answer: status and the API's error message. */
export class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/**
 * api calls the API. body: an object (sent as JSON), a Blob or File (sent
 * as is), or undefined. opts.raw returns the Response (downloads).
 */
export async function api(method, path, body, opts = {}) {
  const headers = {Accept: 'application/json'};
  if (token) headers.Authorization = `Bearer ${token}`;
  let payload;
  if (body instanceof Blob) {
    payload = body;
    headers['Content-Type'] = body.type || 'application/octet-stream';
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers['Content-Type'] = 'application/json';
  }
  const res = await fetch(path, {method, headers, body: payload, credentials: 'omit', cache: 'no-store', redirect: 'error', signal: opts.signal});
  if (res.status === 401 && token && !opts.quiet401) {
    lost();
  }
  if (!res.ok) {
    let msg = `${res.status} ${res.statusText}`;
    try {
      const j = await res.json();
      msg = j.error || j.message || msg;
    } catch { /* not JSON: keep the status line */ }
    throw new APIError(res.status, msg);
  }
  if (opts.raw) return res;
  if (res.status === 204 || res.status === 205) return null;
  const text = await res.text();
  if (!text) return null;
  return (res.headers.get('Content-Type') || '').includes('json') ? JSON.parse(text) : text;
}

export const get = (p, o) => api('GET', p, undefined, o);
export const post = (p, b, o) => api('POST', p, b === undefined ? {} : b, o);
export const put = (p, b, o) => api('PUT', p, b, o);
export const del = (p, b, o) => api('DELETE', p, b, o);

/** q builds a query string from an object, skipping empty values. */
export function q(params) {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') s.set(k, String(v));
  }
  const out = s.toString();
  return out ? `?${out}` : '';
}

/** seg escapes one path segment (an ID or client ID). */
export const seg = (s) => encodeURIComponent(s);
