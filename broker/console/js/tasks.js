// Tasks: the blocked (or other) tasks, kept current by the event stream's `task.*` events;
// a task's details and history; resolve (resume/cancel/abort) with a message and a result
// checked as JSON before sending; extend the deadline. UI plugins add buttons here.

import { api, query, follow } from './api.js';
import { h, clear, table, json, when, toast } from './dom.js';
import { buttonsFor } from './plugins.js';
import { metadataTable } from './metadata.js';

export function render(root, ctx) {
  const f = {
    state: h('select', { id: 'task-state', name: 'state' }, ['blocked', 'resumed', 'cancelled', 'aborted', ''].map(s =>
      h('option', { value: s, text: s || 'any state' }))),
    operation: h('input', { id: 'task-operation', name: 'operation', placeholder: 'e.g. vapp.instantiate' }),
    org: h('input', { id: 'task-org', name: 'org', placeholder: 'org' }),
    metadata: ctx.features.taskMetadata ? h('input', { id: 'task-metadata', name: 'metadata', placeholder: 'metadata query' }) : null,
  };
  const list = h('div', { id: 'task-list' });
  const detail = h('section', { id: 'task-detail', class: 'card', 'aria-label': 'Task' }, h('p', { class: 'muted', text: 'Select a task.' }));
  const status = h('span', { class: 'muted', id: 'task-live' });
  const filters = h('form', { class: 'row card', role: 'search', onsubmit: e => { e.preventDefault(); load(); } },
    h('label', { for: 'task-state' }, 'State', f.state), h('label', { for: 'task-operation' }, 'Operation', f.operation),
    h('label', { for: 'task-org' }, 'Org', f.org), f.metadata && h('label', { for: 'task-metadata' }, 'Metadata', f.metadata),
    h('button', { type: 'submit', text: 'Filter' }));
  clear(root, h('h1', { text: 'Tasks' }), filters, status, h('div', { class: 'layout' }, h('section', { class: 'card' }, list), detail));
  let selected = null;

  async function load() {
    try {
      const q = query({ state: f.state.value, operation: f.operation.value.trim(), org: f.org.value.trim(),
        metadata: f.metadata?.value.trim(), limit: 200 });
      const r = await api('GET', '/tasks' + q);
      clear(list, r.tasks.length ? table(r.tasks, [
        { label: 'Operation', get: t => t.operation },
        { label: 'Org', get: t => t.org },
        { label: 'State', get: t => t.state },
        { label: 'Subject', get: t => t.subject || '' },
        { label: 'Deadline', get: t => when(t.deadline) },
      ], t => show(t.id)) : h('p', { class: 'muted', text: 'No tasks.' }));
      for (const tr of list.querySelectorAll('tbody tr')) tr.dataset.task = r.tasks[tr.sectionRowIndex].id;
    } catch (e) { clear(list, h('p', { class: 'error', role: 'alert', text: e.message })); }
  }

  async function show(id) {
    selected = id;
    let t;
    try { t = await api('GET', `/tasks/${encodeURIComponent(id)}`); } catch (e) { clear(detail, h('p', { class: 'error', text: e.message })); return; }
    if (selected !== id) return;
    for (const tr of list.querySelectorAll('tbody tr')) tr.setAttribute('aria-selected', String(tr.dataset.task === id));
    const plugin = h('div', { class: 'plugin-slot' });
    clear(detail,
      h('h2', { text: `${t.operation} (${t.state})` }),
      h('p', { class: 'muted', text: `${t.id} - org ${t.org} - stage ${t.stage} - deadline ${when(t.deadline)}` }),
      t.state === 'blocked' ? resolveForm(t) : h('p', { text: `Resolved by ${t.resolved_by ?? ''}` }),
      h('div', { class: 'actions' }, buttonsFor(ctx, 'task-action', t, plugin, () => show(id))),
      plugin,
      h('h2', { text: 'History' }),
      table(t.history || [], [
        { label: 'At', get: e => when(e.at) }, { label: 'By', get: e => e.by },
        { label: 'Action', get: e => e.action }, { label: 'Message', get: e => e.message || '' },
      ]),
      ctx.features.metadata ? [h('h2', { text: 'Metadata' }), metadataTable(t.id)] : null,
      h('h2', { text: 'Data' }), json(t.data ?? null),
      t.result ? [h('h2', { text: 'Result' }), json(t.result)] : null);
  }

  function resolveForm(t) {
    const how = h('select', { id: 'resolve-how', name: 'how' }, ['resume', 'cancel', 'abort'].map(a => h('option', { value: a, text: a })));
    const message = h('input', { id: 'resolve-message', name: 'message' });
    const result = h('textarea', { id: 'resolve-result', name: 'result', rows: 5, placeholder: '{"key": "value"} (optional, resume only)', 'aria-describedby': 'resolve-result-error' });
    const resultErr = h('span', { class: 'field-error', id: 'resolve-result-error' });
    const extend = h('input', { id: 'extend-minutes', name: 'minutes', type: 'number', min: 1, value: 10 });
    const submit = async e => {
      e.preventDefault();
      resultErr.textContent = '';
      result.removeAttribute('aria-invalid');
      const body = {};
      if (message.value.trim()) body.message = message.value.trim();
      if (result.value.trim()) {
        try { body.result = JSON.parse(result.value); } catch (err) {
          resultErr.textContent = 'Result is not valid JSON: ' + err.message;
          result.setAttribute('aria-invalid', 'true');
          result.focus();
          return;
        }
        if (how.value !== 'resume') { resultErr.textContent = 'Only a resume carries a result.'; result.focus(); return; }
      }
      try {
        const r = await api('POST', `/tasks/${encodeURIComponent(t.id)}/${how.value}`, body);
        toast('info', `Task ${how.value}: now ${r.state}`);
        load(); show(t.id);
      } catch (err) { resultErr.textContent = err.message; }
    };
    const doExtend = async () => {
      try {
        await api('POST', `/tasks/${encodeURIComponent(t.id)}/extend`, { extend_ms: Math.round(Number(extend.value) * 60000) });
        toast('info', 'Deadline moved');
        show(t.id);
      } catch (err) { toast('error', err.message); }
    };
    return h('form', { class: 'resolve', onsubmit: submit },
      h('div', { class: 'row' }, h('label', { for: 'resolve-how' }, 'Resolve', how), h('label', { for: 'resolve-message' }, 'Message', message)),
      h('label', { for: 'resolve-result' }, 'Result (JSON)', result, resultErr),
      h('div', { class: 'actions' }, h('button', { type: 'submit', id: 'resolve-submit', text: 'Send' })),
      h('div', { class: 'row' }, h('label', { for: 'extend-minutes' }, 'Extend the deadline by minutes', extend),
        h('button', { type: 'button', class: 'secondary', id: 'extend-submit', text: 'Extend', onclick: doExtend })));
  }

  load();
  let pending = null;
  const stop = follow({ filter: 'extbus/events/+/task/#' }, ev => {
    status.textContent = `live - last event ${ev.type} #${ev.seq}`;
    clearTimeout(pending);
    pending = setTimeout(() => { load(); const id = ev.data?.id; if (id && id === selected) show(id); }, 150);
  }, (state, why) => { status.textContent = state === 'live' ? 'live' : `stream: ${why}`; });
  return () => { clearTimeout(pending); stop(); };
}
