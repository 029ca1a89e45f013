// The console's shell: sign-in, navigation and the hash router (`#/licenses`). Each
// page is a module exporting `render(view, params)`; it may return a cleanup function
// (the live tail stops its stream with it).

import { ApiError, check, forget, setKey, signedIn } from './api.js';

const pages = {
  overview: () => import('./pages/overview.js'),
  licenses: () => import('./pages/licenses.js'),
  emails: () => import('./pages/emails.js'),
  slack: () => import('./pages/slack.js'),
  storage: () => import('./pages/storage.js'),
  events: () => import('./pages/events.js'),
  'api-keys': () => import('./pages/keys.js'),
  bridge: () => import('./pages/bridge.js'),
};

const view = document.getElementById('view');
const nav = document.getElementById('nav');
const signin = document.getElementById('signin');
const signout = document.getElementById('signout');
let cleanup = null;
let generation = 0;

function route() {
  const hash = location.hash.startsWith('#/') ? location.hash.slice(2) : '';
  const [name, ...rest] = hash.split('/');
  let params;
  try {
    params = rest.map(decodeURIComponent);
  } catch {
    params = []; // a malformed %-escape: the section's start
  }
  return { name: pages[name] ? name : 'overview', params };
}

async function render() {
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  if (!signedIn()) {
    nav.hidden = true;
    signout.hidden = true;
    view.replaceChildren();
    signin.hidden = false;
    document.getElementById('api-key').focus();
    return;
  }
  signin.hidden = true;
  nav.hidden = false;
  signout.hidden = false;
  const { name, params } = route();
  for (const a of nav.querySelectorAll('a')) {
    if (a.getAttribute('href') === `#/${name}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const mine = ++generation;
  // Each render gets its own container: a page still loading when the person moves on
  // writes into a detached one, never into the next page.
  const container = document.createElement('div');
  view.replaceChildren(container);
  try {
    const page = await pages[name]();
    if (mine !== generation) return;
    const done = await page.render(container, params);
    if (mine !== generation) {
      if (typeof done === 'function') done();
      return;
    }
    if (typeof done === 'function') cleanup = done;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      forget();
      render();
      return;
    }
    const p = document.createElement('p');
    p.className = 'error';
    p.setAttribute('role', 'alert');
    p.textContent = err?.message || String(err);
    if (mine === generation) view.replaceChildren(p);
  }
}

document.getElementById('signin-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const input = document.getElementById('api-key');
  const error = document.getElementById('signin-error');
  const candidate = input.value.trim();
  error.textContent = '';
  if (!candidate) {
    error.textContent = 'Enter an API key.';
    return;
  }
  try {
    await check(candidate);
  } catch (err) {
    error.textContent =
      err instanceof ApiError && err.status === 401
        ? 'That API key was not accepted.'
        : `Could not sign in: ${err.message}`;
    input.select();
    return;
  }
  input.value = '';
  setKey(candidate);
  if (!location.hash.startsWith('#/')) location.hash = '#/overview';
  else render();
});

signout.addEventListener('click', () => {
  forget();
  location.hash = '';
  render();
});

window.addEventListener('hashchange', () => {
  if (location.hash.startsWith('#/') || location.hash === '') render();
});

render();
