// The console's shell: sign-in and sign-out, the page list (with navigation UI plugins) and
// hash routing (`#/tasks`, `#/plugin/<extension>/<name>`, ...). Each page module exports
// `render(root, ctx)`, which may return a function run when the page is left.

import { api, setSession, whenSessionEnds, ApiError } from './api.js';
import { h, clear, toast } from './dom.js';
import * as tasks from './tasks.js';
import * as events from './events.js';
import * as entities from './entities.js';
import * as extensions from './extensions.js';
import * as actions from './actions.js';
import * as plugins from './plugins.js';

const PAGES = [
  ['tasks', 'Tasks', tasks], ['events', 'Events', events], ['entities', 'Entities', entities],
  ['extensions', 'Extensions', extensions], ['actions', 'Actions', actions],
];

const $ = id => document.getElementById(id);
let leave = null;
let ctx = null;

async function features() {
  // Optional routes are found in the API's own OpenAPI document.
  try {
    const doc = await api('GET', '/openapi.json');
    const paths = Object.keys(doc.paths || {});
    return {
      metadata: paths.some(p => p.startsWith('/api/metadata')),
      actions: paths.includes('/api/actions'),
      entityTypes: paths.includes('/api/entity-types'),
      plugins: paths.includes('/api/ui-plugins'),
      taskMetadata: JSON.stringify(doc.paths['/api/tasks']?.get || {}).includes('"metadata"'),
      entityMetadata: JSON.stringify(doc.paths['/api/entities']?.get || {}).includes('"metadata"'),
    };
  } catch { return {}; }
}

async function start(session) {
  setSession(session);
  $('signin').hidden = true;
  $('nav').hidden = false;
  $('signout').hidden = false;
  $('who').textContent = `${session.principal} (${session.roles.join(', ')})`;
  const f = await features();
  ctx = { session, features: f, plugins: f.plugins ? await plugins.load() : [] };
  const links = PAGES.map(([id, title]) => h('a', { href: '#/' + id, 'data-page': id, text: title }));
  for (const p of ctx.plugins.filter(p => p.extension_points.some(e => e.type === 'navigation'))) {
    links.push(h('a', { href: `#/plugin/${p.extension}/${p.name}`, 'data-page': `plugin/${p.extension}/${p.name}`, text: p.title }));
  }
  clear($('nav'), links);
  route();
}

function stop(message) {
  setSession(null);
  if (leave) { leave(); leave = null; }
  clear($('page'));
  clear($('nav'));
  $('nav').hidden = true;
  $('signout').hidden = true;
  $('who').textContent = '';
  $('signin').hidden = false;
  $('signin-error').textContent = message || '';
  $('signin').elements.name.focus();
}

function route() {
  if (!ctx) return;
  const path = location.hash.replace(/^#\/?/, '') || 'tasks';
  if (leave) { leave(); leave = null; }
  const root = clear($('page'));
  for (const a of $('nav').querySelectorAll('a')) {
    if (a.dataset.page === path) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  const m = path.match(/^plugin\/([^/]+)\/([^/]+)$/);
  if (m) { leave = plugins.page(root, ctx, m[1], m[2]) || null; return; }
  const page = PAGES.find(p => p[0] === path.split('/')[0]) || PAGES[0];
  document.title = `${page[1]} - extbus console`;
  leave = page[2].render(root, ctx) || null;
}

$('signin').addEventListener('submit', async e => {
  e.preventDefault();
  const f = e.target;
  $('signin-error').textContent = '';
  try {
    const s = await api('POST', '/session', { name: f.elements.name.value, secret: f.elements.secret.value });
    f.reset();
    await start(s);
  } catch (err) {
    $('signin-error').textContent = err instanceof ApiError && err.status === 401 ? 'Wrong name or secret.' : err.message;
  }
});

$('signout').addEventListener('click', async () => {
  try { await api('DELETE', '/session'); } catch (e) { toast('error', e.message); }
  ctx = null;
  stop('Signed out.');
});

whenSessionEnds(() => { ctx = null; stop('Your session ended; sign in again.'); });
window.addEventListener('hashchange', route);

api('GET', '/session').then(s => (s?.principal ? start(s) : stop()), () => stop());
