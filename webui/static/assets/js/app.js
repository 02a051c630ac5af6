// The admin UI's shell: sign-in, the session (token in memory, the caller's
// permissions), the navigation offered by those permissions, and a hash
// router (#/users/...) so moving between pages never reloads the page and
// never drops the token.

import {h, replace, toast} from './dom.js';
import * as api from './api.js';
import {compile} from './perm.js';
import * as login from './pages/login.js';
import * as overview from './pages/overview.js';
import * as users from './pages/users.js';
import * as roles from './pages/roles.js';
import * as access from './pages/access.js';
import * as registry from './pages/registry.js';
import * as clients from './pages/clients.js';
import * as certificates from './pages/certificates.js';
import * as backup from './pages/backup.js';
import * as account from './pages/account.js';

// Every page: its route, title, module, and the API read it needs to be
// offered (null: every signed-in user).
const routes = [
  {path: 'overview', title: 'Overview', page: overview, needs: null},
  {path: 'users', title: 'Users', page: users, needs: '/api/listUsers'},
  {path: 'roles', title: 'Roles & permissions', page: roles, needs: '/api/roles'},
  {path: 'access', title: 'Try a topic', page: access, needs: '/api/access/check'},
  {path: 'registry', title: 'Client registry', page: registry, needs: '/api/client-registry'},
  {path: 'clients', title: 'Connected clients', page: clients, needs: '/api/clients'},
  {path: 'certificates', title: 'Trusted certificates', page: certificates, needs: '/api/certificates'},
  {path: 'backup', title: 'Backup & restore', page: backup, needs: '/api/maintenance/db'},
  {path: 'account', title: 'My account', page: account, needs: null},
];

const session = {
  username: '',
  userId: '',
  permissions: [],
  expiresAt: '',
  mfaDue: false,
  http: () => false,
  mqtt: () => false,
};

let cleanups = [];
let expiryTimer = 0;
const root = document.getElementById('app');

/** can: may the caller send method to path (GET/HEAD need read, the rest write)? */
function can(method, path) {
  const op = method === 'GET' || method === 'HEAD' ? 'read' : 'write';
  return session.http(op, path);
}

function offered(route) {
  if (session.mfaDue) return route.path === 'account';
  return route.needs === null || can('GET', route.needs);
}

async function signedIn(answer, username) {
  api.setToken(answer.token);
  session.username = username;
  session.mfaDue = Boolean(answer.enforceMFAEnrollment);
  await loadSession();
  const want = (location.hash || '').replace(/^#\/?/, '');
  if (session.mfaDue) location.hash = '#/account';
  else if (!want || want === 'login') location.hash = '#/overview';
  render();
}

// loadSession reads who the caller is and what it may do.
async function loadSession() {
  const s = await api.get('/api/session');
  session.username = s.username || session.username;
  session.permissions = s.permissions || [];
  session.expiresAt = s.expiresAt || '';
  session.mfaDue = Boolean(s.mfa && s.mfa.enforced && !s.mfa.enabled);
  session.http = compile(session.permissions, 'http', session.username);
  session.mqtt = compile(session.permissions, 'mqtt', session.username);
  clearTimeout(expiryTimer);
  const left = Date.parse(session.expiresAt) - Date.now();
  if (left > 0 && left < 2 ** 31) expiryTimer = setTimeout(() => sessionLost('Your session expired. Sign in again.'), left);
}

// sessionLost forgets everything and shows the sign-in page.
function sessionLost(message) {
  api.setToken('');
  if (message) sessionStorage.setItem('warden.notice', message);
  history.replaceState(null, '', '/');
  location.reload();
}

/** logout revokes the token, then reloads: nothing of the session survives in memory. */
async function logout() {
  try {
    await api.post('/api/logout', {}, {quiet401: true});
  } catch (e) {
    // Forgotten here all the same; say that it may still be valid.
    if (e.status !== 401) {
      sessionStorage.setItem('warden.notice', `Signed out, but warden could not revoke the session (${e.message}); it stays valid until ${new Date(session.expiresAt).toLocaleString()}.`);
    }
  }
  api.setToken('');
  history.replaceState(null, '', '/');
  location.reload();
}

function nav(current) {
  return h('nav', {class: 'sidenav', 'aria-label': 'Main'},
    h('ul', {}, routes.filter(offered).map((r) => h('li', {},
      h('a', {href: `#/${r.path}`, 'aria-current': r.path === current ? 'page' : null}, r.title)))));
}

function shell(route) {
  const main = h('main', {id: 'main', tabindex: '-1'});
  const page = h('div', {class: 'layout'},
    h('header', {class: 'topbar'},
      h('a', {class: 'skip', href: '#main', onclick: (e) => { e.preventDefault(); main.focus(); }}, 'Skip to content'),
      h('a', {class: 'brand', href: '#/overview'}, h('img', {src: '/assets/favicon.svg', alt: '', width: 24, height: 24}), 'warden'),
      h('div', {class: 'me'},
        h('span', {class: 'who'}, 'Signed in as ', h('strong', {}, session.username)),
        h('button', {type: 'button', class: 'link', onclick: logout}, 'Log out'))),
    nav(route.path),
    main);
  return {page, main};
}

function runCleanups() {
  for (const fn of cleanups) {
    try { fn(); } catch { /* a page's timer or stream already gone */ }
  }
  cleanups = [];
}

async function render() {
  runCleanups();
  // A toast or a dialog belongs to the page that raised it (Back while a
  // dialog is open leaves that page).
  document.getElementById('toasts').replaceChildren();
  for (const d of document.querySelectorAll('dialog[open]')) d.close();
  if (!api.signedIn()) {
    replace(root, login.render({onSignedIn: signedIn, notice: takeNotice()}));
    document.title = 'Sign in · warden';
    return;
  }
  const [name, ...params] = (location.hash || '#/overview').replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  let route = routes.find((r) => r.path === name);
  if (!route || !offered(route)) route = routes.find(offered);
  if (`#/${[route.path, ...params].join('/')}` !== location.hash && route.path !== name) {
    history.replaceState(null, '', `#/${route.path}`);
  }
  const {page, main} = shell(route);
  replace(root, page);
  document.title = `${route.title} · warden`;
  const ctx = {
    main,
    params,
    session,
    can,
    go: (path) => { location.hash = `#/${path}`; },
    onLeave: (fn) => cleanups.push(fn),
    reloadSession: async () => { await loadSession(); render(); },
  };
  try {
    await route.page.render(ctx);
  } catch (e) {
    replace(main, h('h1', {}, route.title), h('p', {class: 'error', role: 'alert'}, e.message || String(e)));
  }
  main.focus({preventScroll: true});
}

function takeNotice() {
  const n = sessionStorage.getItem('warden.notice');
  sessionStorage.removeItem('warden.notice');
  return n || '';
}

api.onSessionLost(() => {
  toast('Your session ended. Sign in again.', 'error');
  sessionLost('Your session ended (expired, revoked or logged out elsewhere). Sign in again.');
});
window.addEventListener('hashchange', () => {
  if (api.signedIn() || location.hash === '#/login' || location.hash === '') render();
});
render();
