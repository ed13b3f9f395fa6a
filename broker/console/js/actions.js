// Actions: the actions the principal may run (`GET /api/actions`), each with a form made
// from its `parameters` (form.js); a run posts to `/api/actions/<extension>/<name>` and shows
// the message as text, JSON, or a table for an array of objects, with the filled-in
// success text.

import { api } from './api.js';
import { h, clear, json, objectTable, table } from './dom.js';
import { buildForm } from './form.js';

export function render(root, ctx) {
  const list = h('div', { id: 'action-list' }, h('p', { class: 'muted', text: 'Loading...' }));
  const detail = h('section', { class: 'card', id: 'action-detail', 'aria-label': 'Action' }, h('p', { class: 'muted', text: 'Select an action.' }));
  clear(root, h('h1', { text: 'Actions' }), h('div', { class: 'layout' }, h('section', { class: 'card' }, list), detail));
  if (!ctx.features.actions) { clear(list, h('p', { class: 'muted', text: 'This broker serves no actions.' })); return; }
  api('GET', '/actions').then(r => {
    const acts = r.actions || [];
    clear(list, acts.length ? table(acts, [
      { label: 'Action', get: a => a.title || a.name },
      { label: 'Extension', get: a => `${a.extension}/${a.name}` },
      { label: 'Resource', get: a => a.resource },
    ], a => open(a)) : h('p', { class: 'muted', text: 'No actions you may run.' }));
    for (const tr of list.querySelectorAll('tbody tr')) tr.dataset.action = `${acts[tr.sectionRowIndex].extension}/${acts[tr.sectionRowIndex].name}`;
  }, e => clear(list, h('p', { class: 'error', role: 'alert', text: e.message })));

  function open(a) {
    const form = buildForm(a.parameters, 'arg', { strip: '/arguments' });
    const resource = a.resource && a.resource !== 'none'
      ? h('input', { id: 'action-resource', name: 'resource_id', placeholder: a.resource, 'aria-describedby': 'action-resource-error' }) : null;
    const general = h('div', { class: 'error', id: 'action-error', role: 'alert' });
    const out = h('div', { id: 'action-result', 'aria-live': 'polite' });
    const run = h('button', { type: 'submit', id: 'action-run', text: 'Run' });
    const submit = async e => {
      e.preventDefault();
      general.textContent = '';
      clear(out);
      const { ok, args } = form.values();
      if (!ok) return;
      const body = { arguments: args };
      if (resource?.value.trim()) body.resource_id = resource.value.trim();
      run.disabled = true;
      try {
        show(out, await api('POST', `/actions/${encodeURIComponent(a.extension)}/${encodeURIComponent(a.name)}`, body));
      } catch (x) {
        const rest = x.code === 'schema_violation' ? form.showErrors(x.details) : x.details;
        clear(general, x.message, rest?.length ? h('ul', {}, rest.map(d => h('li', { text: `${d.path}: ${d.message}` }))) : null);
      } finally { run.disabled = false; }
    };
    clear(detail, h('h2', { text: a.title || a.name }), h('p', { class: 'muted', text: `${a.extension}/${a.name} - timeout ${a.timeout_ms} ms` }),
      h('form', { id: 'action-form', onsubmit: submit, novalidate: true },
        resource && h('label', { for: 'action-resource' }, 'Resource id', resource), form.el, general, run),
      out);
    detail.querySelector('input, select, textarea')?.focus();
  }
}

function show(out, r) {
  const m = r.message;
  let body;
  if (Array.isArray(m) && m.every(x => x && typeof x === 'object' && !Array.isArray(x))) body = objectTable(m);
  else if (typeof m === 'string') body = h('p', { class: 'result-message', text: m });
  else body = json(m);
  clear(out, h('h2', { text: r.status === 'success' ? 'Done' : 'Failed' }),
    r.text ? h('p', { class: 'result-text', text: r.text }) : null,
    r.status === 'success' ? null : h('p', { class: 'error', text: 'The extension reported an error.' }),
    body);
}
