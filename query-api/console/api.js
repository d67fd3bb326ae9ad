// The only module that talks to the server. The token lives in this tab's session storage and
// goes out as a bearer header, never in a URL or a cookie.

const TOKEN_KEY = 'auditlake.token';

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

function headers(extra = {}) {
  const h = { ...extra };
  const t = token();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

function url(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') q.set(k, v);
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

async function request(method, path, { params, body, accept } = {}) {
  const init = { method, headers: headers(accept ? { Accept: accept } : {}) };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  let response;
  try {
    response = await fetch(url(path, params), init);
  } catch (e) {
    throw new ApiError(0, `the server did not answer (${e.message})`);
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const j = await response.json();
      if (j && j.error) message = j.error;
    } catch (_) { /* not JSON */ }
    if (response.status === 401) {
      window.dispatchEvent(new CustomEvent('auditlake:unauthorized', { detail: message }));
    }
    throw new ApiError(response.status, message);
  }
  return response;
}

async function json(method, path, options) {
  return (await request(method, path, options)).json();
}

export const api = {
  alerts: (params) => json('GET', '/v1/alerts', { params }),
  summary: (params) => json('GET', '/v1/alerts/summary', { params }),
  alert: (id, params) => json('GET', `/v1/alerts/${encodeURIComponent(id)}`, { params }),
  triage: (id, params, body) => json('PATCH', `/v1/alerts/${encodeURIComponent(id)}`, { params, body }),
  exceptionPreview: (id, params) => json('GET', `/v1/alerts/${encodeURIComponent(id)}/exception`, { params }),
  exceptionAppend: (id, params) => json('POST', `/v1/alerts/${encodeURIComponent(id)}/exception`, { params }),
  events: (params) => json('GET', '/v1/events', { params }),
  query: (sql) => json('POST', '/v1/query', { body: { sql } }),
  queryCsv: async (sql) => (await request('POST', '/v1/query', { body: { sql }, accept: 'text/csv' })).blob(),
  rules: () => json('GET', '/v1/rules'),
  status: () => json('GET', '/v1/status'),
};
