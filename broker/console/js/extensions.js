// Extensions: every registration by principal and component, whether it is connected or
// switched off, with its services, rules, entity types, actions and UI plugins; for an
// executable extension (operators and admins see it) whether its program can run, why not,
// and when that was last checked.

import { api } from './api.js';
import { h, clear, table, when, badge } from './dom.js';

const names = (xs, f) => (xs || []).map(f).join(', ');
const rule = r => [r.operation || r.match || '', r.org ? `@${r.org}` : ''].join('') || JSON.stringify(r);
const service = s => typeof s === 'string' ? s : [s.vendor, s.name, s.version].filter(Boolean).join('/') || s.path || JSON.stringify(s);
const named = x => typeof x === 'string' ? x : (x.name || x.id || JSON.stringify(x));
const ready = x => x && h('div', { class: 'readiness', 'data-ready': String(x.ready) },
  badge(x.ready, 'ready', 'not ready'), x.reason ? h('div', { class: 'error', text: x.reason }) : null,
  h('div', { class: 'muted', text: x.checked_at ? `checked ${when(x.checked_at)}` : 'not checked yet' }));

export function render(root) {
  const body = h('div', { id: 'extensions' }, h('p', { class: 'muted', text: 'Loading...' }));
  clear(root, h('h1', { text: 'Extensions' }), h('section', { class: 'card' }, body));
  api('GET', '/registrations').then(r => {
    const items = r.items || [];
    const exec = items.some(i => i.exec);
    clear(body, items.length ? table(items, [
      { label: 'Principal', get: i => i.principal },
      { label: 'Component', get: i => i.component },
      { label: 'Connected', get: i => badge(i.connections > 0, `yes (${i.connections})`, 'no') },
      exec && { label: 'Executable', get: i => ready(i.exec) },
      { label: 'State', get: i => badge(!i.disabled, 'enabled', 'disabled') },
      { label: 'Last seen', get: i => when(i.last_seen) },
      { label: 'Services', get: i => names(i.services, service) },
      { label: 'Rules', get: i => names(i.rules, rule) },
      { label: 'Entity types', get: i => names(i.entity_types, named) },
      { label: 'Actions', get: i => names(i.actions, named) },
      { label: 'UI plugins', get: i => names(i.ui_plugins, named) },
    ].filter(Boolean)) : h('p', { class: 'muted', text: 'No registrations.' }));
    items.forEach((i, n) => { body.querySelectorAll('tbody tr')[n]?.setAttribute('data-registration', `${i.principal}/${i.component}`); });
  }, e => clear(body, h('p', { class: 'error', role: 'alert', text: e.message })));
}
