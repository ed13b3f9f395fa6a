// Entities: browse by type (types from the registrations), view and edit an entity's content
// through a form made from its type's schema (when the broker serves `/api/entity-types`) or
// as JSON, the two kept in step (checked here first, against the type's schema by the broker,
// whose errors are shown by JSON Pointer), its history, and its metadata when the broker
// serves `/api/metadata` (with a search box when `/api/entities` takes `metadata=`).

import { api, query } from './api.js';
import { h, clear, table, when, toast } from './dom.js';
import { buttonsFor } from './plugins.js';
import { metadataTable } from './metadata.js';
import { buildForm } from './form.js';

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
  // Schemas by type id, for the form; without them only JSON is offered.
  const schemas = ctx.features.entityTypes
    ? api('GET', '/entity-types').then(r => new Map((r.types || []).map(t => [t.id, t.spec?.schema])), () => new Map())
    : Promise.resolve(new Map());
  let view = 'form';

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
    const schema = (await schemas).get(e.type);
    const drawable = schema?.type === 'object' && schema.properties;
    const form = drawable ? buildForm(schema, 'entity-field', { value: e.entity }) : null;
    const editor = h('textarea', { id: 'entity-json', rows: 12, 'aria-describedby': 'entity-json-error' });
    editor.value = JSON.stringify(e.entity, null, 2);
    const jsonErr = h('div', { class: 'field-error', id: 'entity-json-error', role: 'alert' });
    const general = h('div', { class: 'error', id: 'entity-error', role: 'alert' });
    const jsonPane = h('label', { for: 'entity-json' }, 'Content (JSON)', editor, jsonErr);
    const formPane = form && h('div', { id: 'entity-form' }, form.el);
    // The JSON text shows the form's value but never what was typed into a secure field.
    const withoutSecrets = v => {
      const c = structuredClone(v);
      for (const [ptr] of form.secrets()) unset(c, ptr);
      return c;
    };
    const parseJson = () => {
      jsonErr.textContent = '';
      try { return { ok: true, value: JSON.parse(editor.value) }; } catch (x) { jsonErr.textContent = 'Not valid JSON: ' + x.message; editor.focus(); return { ok: false }; }
    };
    const toggles = form ? ['form', 'json'].map(m => h('button', { type: 'button', class: 'secondary', id: `entity-view-${m}`,
      text: m === 'form' ? 'Form' : 'JSON', onclick: () => switchTo(m) })) : [];
    const showView = () => {
      const v = form ? view : 'json';
      jsonPane.hidden = v !== 'json';
      if (formPane) formPane.hidden = v !== 'form';
      for (const t of toggles) t.setAttribute('aria-pressed', String(t.id === `entity-view-${v}`));
    };
    function switchTo(m) {
      if (m === view) return;
      if (m === 'json') {
        const r = form.values();
        if (!r.ok) return;
        editor.value = JSON.stringify(withoutSecrets(r.args), null, 2);
      } else {
        const r = parseJson();
        if (!r.ok) return;
        const bad = form.set(r.value);
        if (bad.length) { jsonErr.textContent = cannotShow(bad); editor.focus(); return; }
      }
      view = m;
      showView();
    }
    const save = async ev => {
      ev.preventDefault();
      general.textContent = '';
      let content;
      if (form && view === 'form') {
        const r = form.values();
        if (!r.ok) return;
        content = r.args;
      } else {
        const r = parseJson();
        if (!r.ok) return;
        content = r.value;
        // Secrets typed into the form before switching to JSON are sent too.
        if (form) for (const [ptr, v] of form.secrets()) if (!has(content, ptr)) put(content, ptr, v);
      }
      try {
        await api('PUT', `/entities/${seg(id)}`, { revision: e.revision, entity: content });
        toast('info', 'Saved');
        show(id); load();
      } catch (x) {
        const rest = form && view === 'form' && x.code === 'schema_violation'
          ? form.showErrors((x.details || []).map(d => ({ ...d, path: String(d.path || '').replace(/^\/entity(?=\/|$)/, '') })))
          : x.details;
        clear(general, x.message, rest?.length ? h('ul', {}, rest.map(d => h('li', { text: `${d.path}: ${d.message}` }))) : null);
      }
    };
    const plugin = h('div', { class: 'plugin-slot' });
    clear(detail, h('h2', { text: `${e.name || e.id} (${e.state})` }),
      h('p', { class: 'muted', text: `${e.id} - ${e.type} - revision ${e.revision}` }),
      (e.errors || []).length ? h('ul', { class: 'error' }, e.errors.map(x => h('li', { text: `${x.path}: ${x.message}` }))) : null,
      h('form', { id: 'entity-edit', onsubmit: save, novalidate: true },
        toggles.length ? h('div', { class: 'actions', role: 'group', 'aria-label': 'Edit as' }, toggles) : null,
        formPane, jsonPane, general, h('button', { type: 'submit', id: 'entity-save', text: 'Save' })),
      h('div', { class: 'actions' }, buttonsFor(ctx, 'entity-action', e, plugin, () => show(id))), plugin,
      ctx.features.metadata ? [h('h2', { text: 'Metadata' }), metadataTable(id)] : null,
      h('h2', { text: 'History' }),
      table(e.history || [], [{ label: 'At', get: x => when(x.at) }, { label: 'By', get: x => x.by },
        { label: 'Action', get: x => x.action }, { label: 'Rev', get: x => x.revision }, { label: 'Paths', get: x => (x.paths || []).join(' ') }]));
    // Content the form would change by showing it (a string where a number belongs): JSON.
    if (form?.unshown.length) { view = 'json'; jsonErr.textContent = cannotShow(form.unshown); }
    showView();
    // The type's schema refused the stored content: its errors beside their fields too.
    if (form && (e.errors || []).length) form.showErrors(e.errors);
  }
  load();
}

const cannotShow = ptrs => ptrs.includes('')
  ? 'The form edits a JSON object; keep editing it here.'
  : `The form cannot show ${ptrs.join(', ')} as it is; keep editing it here.`;

// JSON Pointer steps of `ptr` ('/a/b~1c' -> ['a', 'b/c']).
const steps = ptr => ptr.split('/').slice(1).map(s => s.replace(/~1/g, '/').replace(/~0/g, '~'));
function has(v, ptr) {
  let o = v;
  for (const k of steps(ptr)) { if (!o || typeof o !== 'object' || !(k in o)) return false; o = o[k]; }
  return true;
}
function put(v, ptr, value) {
  const ks = steps(ptr);
  let o = v;
  for (const k of ks.slice(0, -1)) { if (!o[k] || typeof o[k] !== 'object') o[k] = {}; o = o[k]; }
  o[ks[ks.length - 1]] = value;
}
function unset(v, ptr) {
  const ks = steps(ptr);
  let o = v;
  for (const k of ks.slice(0, -1)) { o = o?.[k]; if (!o || typeof o !== 'object') return; }
  delete o[ks[ks.length - 1]];
}
