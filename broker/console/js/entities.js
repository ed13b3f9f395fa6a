// Entities: browse by type (types from the registrations), view and edit an entity's content
// as JSON (checked as JSON here, against the type's schema by the broker, whose errors are
// listed by JSON Pointer), its history, and its metadata when the broker serves
// `/api/metadata` (with a search box when `/api/entities` takes `metadata=`).

import { api, query } from './api.js';
import { h, clear, table, when, toast } from './dom.js';
import { buttonsFor } from './plugins.js';
import { metadataTable } from './metadata.js';

// A path segment: entity ids are URNs, whose ':' the API takes as is.
const seg = id => id.replace(/[/?#%]/g, encodeURIComponent);

export function render(root, ctx) {
  // Types are suggested from the registrations and from the entities listed so far.
  const known = h('datalist', { id: 'entity-types' });
  const type = h('input', { id: 'entity-type', name: 'type', list: 'entity-types', placeholder: 'any type (urn:extbus:type:...)' });
  const seen = new Set();
  const suggest = ids => {
    for (const id of ids) if (id && !seen.has(id)) { seen.add(id); known.append(h('option', { value: id })); }
  };
  const org = h('input', { id: 'entity-org', name: 'org', placeholder: 'org' });
  const search = ctx.features.entityMetadata ? h('input', { id: 'entity-search', name: 'metadata', placeholder: 'metadata search' }) : null;
  const list = h('div', { id: 'entity-list' });
  const detail = h('section', { class: 'card', id: 'entity-detail', 'aria-label': 'Entity' }, h('p', { class: 'muted', text: 'Select an entity.' }));
  clear(root, h('h1', { text: 'Entities' }),
    h('form', { class: 'row card', role: 'search', onsubmit: e => { e.preventDefault(); load(); } },
      h('label', { for: 'entity-type' }, 'Type', type, known), h('label', { for: 'entity-org' }, 'Org', org),
      search && h('label', { for: 'entity-search' }, 'Metadata', search), h('button', { type: 'submit', text: 'Show' })),
    h('div', { class: 'layout' }, h('section', { class: 'card' }, list), detail));

  api('GET', '/registrations').then(r => {
    suggest((r.items || []).flatMap(i => (i.entity_types || []).map(t => typeof t === 'string' ? t : t.id)));
  }, () => {});

  async function load() {
    try {
      const r = await api('GET', '/entities' + query({ type: type.value.trim(), org: org.value.trim(), metadata: search?.value.trim(), limit: 200 }));
      suggest(r.entities.map(e => e.type));
      clear(list, r.entities.length ? table(r.entities, [
        { label: 'Name', get: e => e.name || '' }, { label: 'Type', get: e => e.type },
        { label: 'Org', get: e => e.org }, { label: 'State', get: e => e.state }, { label: 'Rev', get: e => e.revision },
      ], e => show(e.id)) : h('p', { class: 'muted', text: 'No entities.' }));
    } catch (e) { clear(list, h('p', { class: 'error', role: 'alert', text: e.message })); }
  }

  async function show(id) {
    let e;
    try { e = await api('GET', `/entities/${seg(id)}`); } catch (err) { clear(detail, h('p', { class: 'error', text: err.message })); return; }
    const editor = h('textarea', { id: 'entity-json', rows: 12, 'aria-describedby': 'entity-json-error' });
    editor.value = JSON.stringify(e.entity, null, 2);
    const err = h('div', { class: 'field-error', id: 'entity-json-error', role: 'alert' });
    const save = async ev => {
      ev.preventDefault();
      err.textContent = '';
      let content;
      try { content = JSON.parse(editor.value); } catch (x) { err.textContent = 'Not valid JSON: ' + x.message; editor.focus(); return; }
      try {
        await api('PUT', `/entities/${seg(id)}`, { revision: e.revision, entity: content });
        toast('info', 'Saved');
        show(id); load();
      } catch (x) {
        clear(err, x.message, x.details?.length ? h('ul', {}, x.details.map(d => h('li', { text: `${d.path}: ${d.message}` }))) : null);
      }
    };
    const plugin = h('div', { class: 'plugin-slot' });
    clear(detail, h('h2', { text: `${e.name || e.id} (${e.state})` }),
      h('p', { class: 'muted', text: `${e.id} - ${e.type} - revision ${e.revision}` }),
      (e.errors || []).length ? h('ul', { class: 'error' }, e.errors.map(x => h('li', { text: `${x.path}: ${x.message}` }))) : null,
      h('form', { onsubmit: save }, h('label', { for: 'entity-json' }, 'Content (JSON)', editor), err,
        h('button', { type: 'submit', text: 'Save' })),
      h('div', { class: 'actions' }, buttonsFor(ctx, 'entity-action', e, plugin, () => show(id))), plugin,
      ctx.features.metadata ? [h('h2', { text: 'Metadata' }), metadataTable(id)] : null,
      h('h2', { text: 'History' }),
      table(e.history || [], [{ label: 'At', get: x => when(x.at) }, { label: 'By', get: x => x.by },
        { label: 'Action', get: x => x.action }, { label: 'Rev', get: x => x.revision }, { label: 'Paths', get: x => (x.paths || []).join(' ') }]));
  }
  load();
}
