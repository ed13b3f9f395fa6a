// Events: the live stream (MQTT filter and type filter), newest first, and paging back
// through stored events with `GET /api/events`.

import { api, query, follow } from './api.js';
import { h, clear, json, when } from './dom.js';

const PAGE = 50;
const KEEP = 500;

export function render(root) {
  const filter = h('input', { id: 'events-filter', name: 'filter', value: 'extbus/events/#', 'aria-label': 'Topic filter' });
  const type = h('input', { id: 'events-type', name: 'type', placeholder: 'type starts with, e.g. task.' });
  const status = h('span', { class: 'muted', id: 'events-live' });
  const body = h('tbody');
  const older = h('button', { type: 'button', class: 'secondary', id: 'events-older', text: 'Older events' });
  const shown = [];
  let stop = () => {};
  let oldest = null;

  const row = ev => {
    const tr = h('tr', { class: 'selectable', tabIndex: 0 },
      h('td', { text: ev.seq }), h('td', { text: when(ev.time) }), h('td', { text: ev.type }),
      h('td', { text: ev.org || '' }), h('td', { text: ev.subject || '' }), h('td', { text: ev.outcome || '' }));
    const toggle = () => {
      if (tr.nextSibling?.classList?.contains('expanded')) { tr.nextSibling.remove(); return; }
      tr.after(h('tr', { class: 'expanded' }, h('td', { colSpan: 6 }, json(ev))));
    };
    tr.addEventListener('click', toggle);
    tr.addEventListener('keydown', e => { if (e.key === 'Enter') toggle(); });
    return tr;
  };
  const visible = ev => !type.value || ev.type.startsWith(type.value.trim());
  const redraw = () => clear(body, shown.filter(visible).map(row));

  // The newest stored seq the filter shows, found by bisection (the replay pages forward).
  async function head() {
    const at = async seq => (await api('GET', '/events' + query({ filter: filter.value, from_seq: seq, limit: 1 }))).events[0];
    const first = await at(0);
    if (!first) return null;
    let lo = first.seq, hi = 2 ** 40;
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      const e = await at(mid);
      if (e) lo = e.seq; else hi = mid;
    }
    return lo + 1;
  }

  async function back() {
    try {
      const end = oldest ?? await head();
      if (end === null || end <= 1) { older.disabled = true; return; }
      const from = Math.max(0, end - PAGE);
      const r = await api('GET', '/events' + query({ filter: filter.value, from_seq: from, limit: PAGE }));
      for (const e of r.events) if (e.seq < end && !shown.some(s => s.seq === e.seq)) shown.push(e);
      shown.sort((a, b) => b.seq - a.seq);
      oldest = from;
      older.disabled = from <= (r.first_seq ?? 0);
      redraw();
    } catch (e) { status.textContent = e.message; }
  }

  function live() {
    stop();
    shown.length = 0;
    oldest = null;
    redraw();
    stop = follow({ filter: filter.value }, ev => {
      shown.unshift(ev);
      if (shown.length > KEEP) shown.length = KEEP;
      if (oldest === null || ev.seq < oldest) oldest = ev.seq;
      if (visible(ev)) body.prepend(row(ev));
    }, (s, why) => { status.textContent = s === 'live' ? 'live' : `stream: ${why}`; });
  }

  older.addEventListener('click', back);
  clear(root, h('h1', { text: 'Events' }),
    h('form', { class: 'row card', role: 'search', onsubmit: e => { e.preventDefault(); live(); } },
      h('label', { for: 'events-filter' }, 'Topic filter', filter), h('label', { for: 'events-type' }, 'Type', type),
      h('button', { type: 'submit', text: 'Apply' })),
    status,
    h('section', { class: 'card' }, h('div', { class: 'scroll' }, h('table', {},
      h('thead', {}, h('tr', {}, ['Seq', 'Time', 'Type', 'Org', 'Subject', 'Outcome'].map(c => h('th', { scope: 'col', text: c })))), body)),
    h('div', { class: 'actions' }, older)));
  type.addEventListener('input', redraw);
  live();
  return () => stop();
}
