// Extensions: every registration by principal and component, whether it is connected or
// switched off, with its services, rules, entity types, actions and UI plugins.

import { api } from './api.js';
import { h, clear, table, when, badge } from './dom.js';

const names = (xs, f) => (xs || []).map(f).join(', ');
const rule = r => [r.operation || r.match || '', r.org ? `@${r.org}` : ''].join('') || JSON.stringify(r);
const service = s => typeof s === 'string' ? s : [s.vendor, s.name, s.version].filter(Boolean).join('/') || s.path || JSON.stringify(s);
const named = x => typeof x === 'string' ? x : (x.name || x.id || JSON.stringify(x));

export function render(root) {
  const body = h('div', { id: 'extensions' }, h('p', { class: 'muted', text: 'Loading...' }));
  clear(root, h('h1', { text: 'Extensions' }), h('section', { class: 'card' }, body));
  api('GET', '/registrations').then(r => {
    const items = r.items || [];
    clear(body, items.length ? table(items, [
      { label: 'Principal', get: i => i.principal },
      { label: 'Component', get: i => i.component },
      { label: 'Connected', get: i => badge(i.connections > 0, `yes (${i.connections})`, 'no') },
      { label: 'State', get: i => badge(!i.disabled, 'enabled', 'disabled') },
      { label: 'Last seen', get: i => when(i.last_seen) },
      { label: 'Services', get: i => names(i.services, service) },
      { label: 'Rules', get: i => names(i.rules, rule) },
      { label: 'Entity types', get: i => names(i.entity_types, named) },
      { label: 'Actions', get: i => names(i.actions, named) },
      { label: 'UI plugins', get: i => names(i.ui_plugins, named) },
    ]) : h('p', { class: 'muted', text: 'No registrations.' }));
  }, e => clear(body, h('p', { class: 'error', role: 'alert', text: e.message })));
}
