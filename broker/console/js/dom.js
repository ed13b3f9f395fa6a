// DOM helpers shared by the pages: element builder, tables, JSON blocks, notifications.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function json(v) {
  return h('pre', { class: 'json', text: JSON.stringify(v, null, 2) });
}

export function when(t) {
  return t ? new Date(t).toLocaleString() : '';
}

// A table of `rows` with `cols` [{label, get(row) -> node|string}]; `onpick(row)` makes rows
// selectable by click and by Enter.
export function table(rows, cols, onpick) {
  const head = h('tr', {}, cols.map(c => h('th', { scope: 'col', text: c.label })));
  const body = rows.map(r => {
    const tr = h('tr', {}, cols.map(c => h('td', {}, c.get(r))));
    if (onpick) {
      tr.className = 'selectable';
      tr.tabIndex = 0;
      tr.addEventListener('click', () => onpick(r, tr));
      tr.addEventListener('keydown', e => { if (e.key === 'Enter') onpick(r, tr); });
    }
    return tr;
  });
  return h('div', { class: 'scroll' }, h('table', {}, h('thead', {}, head), h('tbody', {}, body)));
}

// A table for an array of objects: one column per key seen.
export function objectTable(items) {
  const keys = [...new Set(items.flatMap(o => Object.keys(o || {})))];
  return table(items, keys.map(k => ({
    label: k,
    get: o => (o && typeof o[k] === 'object' && o[k] !== null) ? JSON.stringify(o[k]) : String(o?.[k] ?? ''),
  })));
}

export function toast(level, text) {
  const box = document.getElementById('toasts');
  const t = h('div', { class: 'toast' + (level === 'error' ? ' error' : ''), text });
  box.append(t);
  setTimeout(() => t.remove(), 6000);
}

export function badge(on, yes, no) {
  return h('span', { class: 'badge ' + (on ? 'on' : 'off'), text: on ? yes : no });
}
