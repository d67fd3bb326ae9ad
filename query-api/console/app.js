// The console's shell: sign-in, routing by the URL's hash (every view is a link), navigation.

import { api, ApiError, setToken, token } from './api.js';
import { h, parseRoute } from './ui.js';
import * as alerts from './alerts.js';
import * as alert from './alert.js';
import * as explore from './explore.js';
import * as sql from './sql.js';
import * as rules from './rules.js';

const views = { alerts, alert, explore, sql, rules };
const view = () => document.getElementById('view');
let signedIn = false;

function showSignIn(message) {
  signedIn = false;
  document.getElementById('sign-out').hidden = true;
  const input = h('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'off', required: true, placeholder: 'token', 'aria-label': 'API token' });
  const form = h('form', { id: 'sign-in', class: 'sign-in' },
    h('h1', {}, 'Sign in to auditlake'),
    h('p', { class: 'muted' }, 'Paste an API token with the query scope (and triage to change alerts). It is kept in this tab only.'),
    input,
    h('button', { type: 'submit', id: 'sign-in-button' }, 'Sign in'),
    message ? h('p', { id: 'sign-in-error', class: 'error', role: 'alert' }, message) : null);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    setToken(input.value.trim());
    try {
      await api.rules();
      signedIn = true;
      render();
    } catch (err) {
      setToken(null);
      showSignIn(err instanceof ApiError && err.status === 401
        ? `That token was refused: ${err.message}.`
        : err instanceof ApiError && err.status === 403
          ? `That token lacks the query scope: ${err.message}.`
          : `Cannot sign in: ${err.message}`);
    }
  });
  view().replaceChildren(form);
  input.focus();
}

async function render() {
  const { view: name, arg, params } = parseRoute();
  for (const a of document.querySelectorAll('nav a')) {
    a.classList.toggle('active', a.dataset.view === name || (name === 'alert' && a.dataset.view === 'alerts'));
  }
  if (!signedIn) {
    try {
      await api.rules();
      signedIn = true;
    } catch (err) {
      showSignIn(token() && err.status === 401 ? `That token was refused: ${err.message}.` : null);
      return;
    }
  }
  document.getElementById('sign-out').hidden = !token();
  const target = views[name] || alerts;
  const root = h('div', { class: `view view-${name}` });
  view().replaceChildren(root);
  try {
    await target.render(root, params, arg);
  } catch (err) {
    root.append(h('div', { class: 'error', role: 'alert' }, err.message || String(err)));
  }
}

window.addEventListener('hashchange', render);
window.addEventListener('auditlake:unauthorized', (e) => {
  if (signedIn) {
    setToken(null);
    showSignIn(`Signed out: ${e.detail}.`);
  }
});
document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('sign-out').addEventListener('click', () => {
    setToken(null);
    showSignIn('Signed out.');
  });
  render();
});
