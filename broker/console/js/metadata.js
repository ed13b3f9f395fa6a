// An object's metadata entries (`GET /api/metadata/<id>`) as a table, for tasks and entities
// when the broker serves metadata.

import { api } from './api.js';
import { h, clear, table } from './dom.js';

export function metadataTable(id) {
  const box = h('div', { class: 'metadata', 'data-object': id }, h('p', { class: 'muted', text: 'Loading metadata...' }));
  api('GET', `/metadata/${id.replace(/[/?#%]/g, encodeURIComponent)}`).then(m => {
    const entries = Array.isArray(m?.metadata) ? m.metadata : [];
    clear(box, entries.length ? table(entries, [
      { label: 'Domain', get: e => e.domain || 'tenant' }, { label: 'Namespace', get: e => e.namespace || '' },
      { label: 'Key', get: e => e.key },
      { label: 'Value', get: e => (e.value && typeof e.value === 'object' && 'value' in e.value) ? String(e.value.value) : JSON.stringify(e.value) },
      { label: 'Read-only', get: e => (e.read_only ? 'yes' : '') },
    ]) : h('p', { class: 'muted', text: 'No metadata.' }));
  }, e => clear(box, h('p', { class: 'muted', text: e.message })));
  return box;
}
