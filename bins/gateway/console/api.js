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

// Encodes each segment of a blob key or other path part.
export function seg(value) {
  return String(value).split('/').map(encodeURIComponent).join('/');
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
  const res = await fetch(url(path, query), init);
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
