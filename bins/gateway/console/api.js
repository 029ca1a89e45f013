// The API client: the key lives in this tab only (sessionStorage), goes only in the
// Authorization header, and every answer that is not 2xx becomes an ApiError carrying
// the problem document (RFC 9457).

const STORE = 'eb-console-key';
let key = sessionStorage.getItem(STORE);

export function signedIn() {
  return Boolean(key);
}

export function setKey(value) {
  key = value;
  sessionStorage.setItem(STORE, value);
}

export function forget() {
  key = null;
  sessionStorage.removeItem(STORE);
}

export function authHeader() {
  return `Bearer ${key}`;
}

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
    this.code = this.problem.code || '';
  }

  // The scope a 403 names (`this API key lacks the `emails:read` scope; ...`).
  get scope() {
    if (this.status !== 403) return null;
    const m = /lacks the `([^`]+)` scope/.exec(this.problem.detail || '');
    return m ? m[1] : null;
  }
}

// `/api/v1/licenses` with a query object (empty values left out).
export function url(path, query) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') params.set(k, v);
  }
  const q = params.toString();
  return q ? `${path}?${q}` : path;
}

// Encodes each segment of a blob key (or a folder, with its trailing `/`). A `.` or `..`
// segment is refused: the browser would resolve it, and a request built from a crafted
// key (from the address bar or from an answer) would reach another route with this key.
export function seg(value) {
  return String(value)
    .split('/')
    .map((part) => {
      if (part === '.' || part === '..') throw new Error(`refused the path segment "${part}" in "${value}"`);
      return encodeURIComponent(part);
    })
    .join('/');
}

// Encodes one path segment (a namespace, an id): a `/` in it stays inside it (`%2F`).
export function one(value) {
  const text = String(value);
  if (text === '' || text === '.' || text === '..') throw new Error(`refused the path segment "${text}"`);
  return encodeURIComponent(text);
}

// The request path as sent: refused when the browser would resolve it to another one
// (dot segments, a scheme, another origin), so no request leaves for a route other
// than the one the page built.
export function guard(target) {
  const raw = target.split('?')[0];
  const resolved = new URL(target, location.origin);
  if (resolved.origin !== location.origin || resolved.pathname !== raw || !raw.startsWith('/api/v1/')) {
    throw new Error(`refused a request to ${raw}`);
  }
  return target;
}

export async function request(method, path, { query, body, headers = {}, signal } = {}) {
  const init = {
    method,
    headers: { Authorization: authHeader(), Accept: 'application/json, application/problem+json', ...headers },
    cache: 'no-store',
    credentials: 'omit',
    referrerPolicy: 'no-referrer',
    signal,
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(guard(url(path, query)), init);
  if (!res.ok) {
    let problem = null;
    try {
      problem = await res.json();
    } catch {
      problem = null;
    }
    throw new ApiError(res.status, problem);
  }
  return res;
}

export async function api(method, path, options) {
  const res = await request(method, path, options);
  if (res.status === 204) return null;
  const type = res.headers.get('Content-Type') || '';
  return type.includes('json') ? res.json() : res.text();
}

export const get = (path, query, options = {}) => api('GET', path, { ...options, query });
export const post = (path, body) => api('POST', path, { body });
export const del = (path) => api('DELETE', path);

// Checks a key before keeping it: 401 means it is not a key at all; 403 (a narrow key)
// still signs in, since each section then says which scope it needs.
export async function check(candidate) {
  const res = await fetch('/api/v1/events?limit=1', {
    headers: { Authorization: `Bearer ${candidate}`, Accept: 'application/json' },
    cache: 'no-store',
    credentials: 'omit',
  });
  if (res.status === 401 || res.status === 429) {
    let problem = null;
    try {
      problem = await res.json();
    } catch {
      problem = null;
    }
    throw new ApiError(res.status, problem);
  }
  return true;
}
