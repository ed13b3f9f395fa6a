// Forms generated from a JSON Schema object (an action's `parameters`, an entity type's
// `schema`): one control per property, chosen by type and format (boolean a switch, enum a
// select, numbers with their bounds, nested objects as fieldsets, arrays of scalars as a list
// editor, JSON text for anything else), optionally filled from a value, checked in the
// browser before sending. `x-extbus-secure` properties are write-only: masked, never filled,
// left out while empty. Errors from either side are shown next to their field (server
// `details` name it by JSON Pointer).

import { h } from './dom.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const SCALAR = ['enum', 'boolean', 'integer', 'number', 'string'];

function kind(p) {
  if (!p || typeof p !== 'object') return 'json';
  const t = Array.isArray(p.type) ? p.type.find(x => x !== 'null') : p.type;
  if (Array.isArray(p.enum)) return 'enum';
  if (t === 'boolean') return 'boolean';
  if (t === 'integer' || t === 'number') return t;
  if (t === 'string' || t === undefined && p.format) return 'string';
  if (t === 'object' && p.properties && typeof p.properties === 'object') return 'object';
  if (t === 'array' && p.items && SCALAR.includes(kind(p.items))) return 'list';
  return 'json';
}

const secure = p => p?.['x-extbus-secure'] === true;
// An empty list or object the value did not have is left out rather than added.
const empty = v => typeof v === 'object' && v !== null && Object.keys(v).length === 0;
const escape = s => s.replace(/~/g, '~0').replace(/\//g, '~1');

// ISO time to a datetime-local value, in local time.
function localTime(v) {
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) return '';
  const z = new Date(d.getTime() - d.getTimezoneOffset() * 60000);
  return z.toISOString().slice(0, 19);
}

// One scalar control (also a list's item): { el, get() -> {value}|{error}|{}, set(v) },
// where `set` says whether the control shows `v` as it is (a string in a number field,
// or a value no option has, would be lost).
function scalar(name, p, id, required, described) {
  const k = kind(p);
  const common = { id, name, 'aria-describedby': described, required: required && k !== 'boolean' };
  let el;
  if (k === 'boolean') el = h('input', { ...common, type: 'checkbox', role: 'switch', checked: p.default === true });
  else if (k === 'enum') {
    el = h('select', common, required ? null : h('option', { value: '', text: '(none)' }),
      p.enum.map(v => h('option', { value: JSON.stringify(v), text: String(v), selected: p.default === v })));
  } else if (k === 'integer' || k === 'number') {
    el = h('input', { ...common, type: 'number', step: k === 'integer' ? '1' : 'any',
      min: p.minimum ?? p.exclusiveMinimum, max: p.maximum ?? p.exclusiveMaximum, value: p.default ?? '' });
  } else {
    const type = { 'date-time': 'datetime-local', password: 'password', email: 'email', uri: 'url' }[p.format] || 'text';
    el = h('input', { ...common, type, step: type === 'datetime-local' ? '1' : undefined,
      autocomplete: type === 'password' ? 'new-password' : 'off',
      minlength: p.minLength, maxlength: p.maxLength, value: p.default ?? '' });
  }
  return {
    el,
    get: () => read(el, p, required),
    set(v) {
      if (k === 'boolean') el.checked = v === true;
      else if (k === 'enum') el.value = v === undefined ? '' : JSON.stringify(v);
      else if (v === undefined || v === null) el.value = '';
      else el.value = p.format === 'date-time' ? localTime(v) : String(v);
      if (v === undefined) return true;
      if (k === 'boolean') return typeof v === 'boolean';
      if (k === 'enum') return el.value === JSON.stringify(v);
      if (k === 'integer' || k === 'number') return typeof v === 'number' && el.value !== '';
      return typeof v === 'string' && (p.format !== 'date-time' || el.value !== '');
    },
  };
}

// The value of one scalar control, or an error message.
function read(el, p, required) {
  const k = kind(p);
  if (k === 'boolean') return { value: el.checked };
  // What the browser could not parse (letters in a number field) reads as empty.
  if (el.validity?.badInput) return { error: k === 'string' ? 'not a complete value' : `must be ${k === 'integer' ? 'a whole number' : 'a number'}` };
  const raw = el.value;
  if (raw === '') return required ? { error: 'required' } : {};
  if (k === 'enum') return { value: JSON.parse(raw) };
  if (k === 'integer' || k === 'number') {
    const n = Number(raw);
    if (!Number.isFinite(n) || (k === 'integer' && !Number.isInteger(n))) return { error: `must be ${k === 'integer' ? 'a whole number' : 'a number'}` };
    if (p.minimum !== undefined && n < p.minimum) return { error: `must be at least ${p.minimum}` };
    if (p.maximum !== undefined && n > p.maximum) return { error: `must be at most ${p.maximum}` };
    if (p.exclusiveMinimum !== undefined && n <= p.exclusiveMinimum) return { error: `must be more than ${p.exclusiveMinimum}` };
    if (p.exclusiveMaximum !== undefined && n >= p.exclusiveMaximum) return { error: `must be less than ${p.exclusiveMaximum}` };
    return { value: n };
  }
  if (k === 'json') {
    try { return { value: JSON.parse(raw) }; } catch (e) { return { error: 'not valid JSON: ' + e.message }; }
  }
  let v = raw;
  if (p.format === 'date-time') {
    const d = new Date(raw);
    if (Number.isNaN(d.getTime())) return { error: 'not a date and time' };
    v = d.toISOString();
  }
  if (p.format === 'email' && !EMAIL.test(v)) return { error: 'must be an email address' };
  if (p.format === 'uuid' && !UUID.test(v)) return { error: 'must be a UUID' };
  if (p.format === 'uri') { try { new URL(v); } catch { return { error: 'must be an absolute URI' }; } }
  if (p.minLength !== undefined && v.length < p.minLength) return { error: `at least ${p.minLength} characters` };
  if (p.maxLength !== undefined && v.length > p.maxLength) return { error: `at most ${p.maxLength} characters` };
  if (p.pattern && !new RegExp(p.pattern, 'u').test(v)) return { error: `must match ${p.pattern}` };
  return { value: v };
}

// A write-only field: masked, never filled; empty means "keep the stored value".
function secret(name, p, id, described) {
  const el = h('input', { id, name, type: 'password', autocomplete: 'new-password', 'aria-describedby': described,
    placeholder: 'write-only: leave empty to keep', 'data-secure': 'true' });
  const str = kind(p) === 'string';
  return {
    el,
    get() {
      if (el.value === '') return {};
      if (str) return read(el, { ...p, format: undefined }, false);
      try { return { value: JSON.parse(el.value) }; } catch (e) { return { error: 'not valid JSON: ' + e.message }; }
    },
    set: () => true,
    secret: true,
  };
}

// A list editor for an array of scalars: one row per item, with Add and Remove.
function list(name, p, id, described) {
  const rows = h('div', { class: 'list-items' });
  const items = [];
  let made = 0;
  const add = v => {
    const item = scalar(name, p.items, `${id}-${made++}`, true, described);
    item.shown = item.set(v);
    const row = h('div', { class: 'list-item' }, item.el,
      h('button', { type: 'button', class: 'secondary', text: 'Remove', 'aria-label': `Remove item from ${name}`,
        onclick: () => { items.splice(items.indexOf(item), 1); row.remove(); } }));
    items.push(item);
    rows.append(row);
  };
  const el = h('div', { class: 'list', id, role: 'group' }, rows,
    h('button', { type: 'button', class: 'secondary', text: 'Add', id: id + '-add', onclick: () => add(undefined) }));
  return {
    el,
    get() {
      const out = [];
      for (const [i, it] of items.entries()) {
        const r = it.get();
        if (r.error) return { error: `item ${i + 1}: ${r.error}` };
        if (r.value !== undefined) out.push(r.value);
      }
      if (p.minItems !== undefined && out.length < p.minItems) return { error: `at least ${p.minItems} items` };
      if (p.maxItems !== undefined && out.length > p.maxItems) return { error: `at most ${p.maxItems} items` };
      return { value: out };
    },
    set(v) {
      items.length = 0; made = 0; rows.replaceChildren();
      for (const x of Array.isArray(v) ? v : []) add(x);
      return v === undefined || Array.isArray(v) && v.every((x, i) => items[i].shown);
    },
  };
}

// JSON text for what the form cannot draw.
function jsonField(name, id, required, described) {
  const el = h('textarea', { id, name, rows: 4, placeholder: 'JSON', 'aria-describedby': described, required });
  return {
    el,
    get() {
      if (el.value.trim() === '') return required ? { error: 'required' } : {};
      try { return { value: JSON.parse(el.value) }; } catch (e) { return { error: 'not valid JSON: ' + e.message }; }
    },
    set(v) { el.value = v === undefined ? '' : JSON.stringify(v, null, 2); return true; },
  };
}

// An object's fields (the whole form, or a nested fieldset). Keys of a set value that the
// schema does not name are kept as they were.
function group(schema, prefix, ptr, fields, filled) {
  const props = schema?.properties || {};
  const required = new Set(schema?.required || []);
  const parts = [];
  // Required fields first, the rest in the schema's order.
  const entries = Object.entries(props).sort((a, b) => required.has(b[0]) - required.has(a[0]));
  const nodes = entries.map(([name, p]) => {
    const id = `${prefix}-${name}`.replace(/[^A-Za-z0-9_-]/g, '_');
    const at = `${ptr}/${escape(name)}`;
    const req = required.has(name);
    const err = h('span', { class: 'field-error', id: id + '-error', 'data-field': at });
    const title = (p?.title || name) + (req ? ' *' : '');
    const k = kind(p);
    let f;
    let node;
    if (secure(p)) {
      f = secret(name, p, id, id + '-error');
      node = h('label', { for: id }, title, h('span', { class: 'muted', text: ' (write-only)' }), f.el, err);
    } else if (k === 'object') {
      const inner = group(p, id, at, fields, filled);
      node = h('fieldset', { id }, h('legend', { text: title }), inner.el, err);
      f = { get: inner.get, set: inner.set, el: node };
    } else {
      f = k === 'list' ? list(name, p, id, id + '-error') : k === 'json' ? jsonField(name, id, req, id + '-error') : scalar(name, p, id, req, id + '-error');
      node = k === 'boolean'
        ? h('div', {}, h('label', { class: 'switch', for: id }, f.el, title), err)
        : h(k === 'list' ? 'div' : 'label', k === 'list' ? { class: 'label' } : { for: id }, title,
          p?.description ? h('span', { class: 'muted', text: ' ' + p.description }) : null, f.el, err);
    }
    fields.push({ at, err, control: f.el, secret: f.secret ? f : null });
    parts.push({ name, f, req, k, touched: false, present: false });
    const part = parts[parts.length - 1];
    f.el.addEventListener('change', () => { part.touched = true; });
    return node;
  });
  let extra = {};
  return {
    el: h('div', { class: 'fields' }, nodes),
    get() {
      const out = { ...extra };
      const errors = [];
      for (const part of parts) {
        // A switch the value did not have stays out unless it was changed.
        if (part.k === 'boolean' && filled.on && !part.present && !part.touched && !part.req) continue;
        const r = part.f.get();
        if (r.errors) errors.push(...r.errors);
        else if (r.error) errors.push({ at: `${ptr}/${escape(part.name)}`, message: r.error });
        else if (r.value !== undefined && !(empty(r.value) && !part.present && !part.req)) out[part.name] = r.value;
        else delete out[part.name];
      }
      return errors.length ? { errors } : { value: out };
    },
    // Fills the fields from `v`; returns the JSON Pointers of what they cannot show as it is.
    set(v) {
      const isObject = v && typeof v === 'object' && !Array.isArray(v);
      const o = isObject ? v : {};
      extra = Object.fromEntries(Object.entries(o).filter(([k]) => !(k in props)));
      const unshown = isObject || v === undefined ? [] : [ptr];
      for (const part of parts) {
        part.present = part.name in o;
        part.touched = false;
        const r = part.f.set(o[part.name]);
        if (Array.isArray(r)) unshown.push(...r);
        else if (!r) unshown.push(`${ptr}/${escape(part.name)}`);
      }
      return unshown;
    },
  };
}

// `buildForm(schema, prefix, { value, strip })`: `value` fills the fields; `strip` is the
// pointer prefix of server details that name the form's fields (`/arguments`).
export function buildForm(schema, prefix, opts = {}) {
  const fields = [];
  const filled = { on: opts.value !== undefined };
  const root = group(schema, prefix, '', fields, filled);
  const unshown = filled.on ? root.set(opts.value) : [];
  const el = root.el;

  function clearErrors() {
    for (const f of fields) { f.err.textContent = ''; f.control.removeAttribute('aria-invalid'); }
  }
  // The deepest field at or above `path`.
  function mark(path, message) {
    const f = fields.filter(x => path === x.at || path.startsWith(x.at + '/')).sort((a, b) => b.at.length - a.at.length)[0];
    if (!f) return false;
    f.err.textContent = f.err.textContent ? f.err.textContent + '; ' + message : message;
    f.control.setAttribute('aria-invalid', 'true');
    return true;
  }
  const focusFirst = () => el.querySelector('[aria-invalid="true"]')?.focus();
  return {
    el,
    // What the fields could not show of the value given at build time (JSON Pointers).
    unshown,
    // Fills the fields from `v` (secure fields stay as typed); returns what they cannot show.
    set(v) { filled.on = true; return root.set(v); },
    values() {
      clearErrors();
      const r = root.get();
      if (r.errors) { for (const e of r.errors) mark(e.at, e.message); focusFirst(); return { ok: false, args: {} }; }
      return { ok: true, args: r.value };
    },
    // The secure fields typed in, as [JSON Pointer, value] pairs.
    secrets() {
      return fields.filter(f => f.secret).map(f => [f.at, f.secret.get().value]).filter(([, v]) => v !== undefined);
    },
    // Server `details` [{path, message}]: those naming a field are shown beside it; the rest
    // are returned for a general message.
    showErrors(details) {
      clearErrors();
      const rest = [];
      for (const d of details || []) {
        let path = String(d.path || '');
        if (opts.strip && path.startsWith(opts.strip + '/')) path = path.slice(opts.strip.length);
        if (!mark(path, d.message)) rest.push(d);
      }
      focusFirst();
      return rest;
    },
  };
}
