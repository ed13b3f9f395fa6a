// Forms generated from a JSON Schema object (an action's `parameters`): one input per
// property, chosen by type and format, checked in the browser before sending; errors from
// either side are shown next to their field (server `details` name it by JSON Pointer).

import { h } from './dom.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

function kind(p) {
  const t = Array.isArray(p.type) ? p.type.find(x => x !== 'null') : p.type;
  if (Array.isArray(p.enum)) return 'enum';
  if (t === 'boolean') return 'boolean';
  if (t === 'integer' || t === 'number') return t;
  if (t === 'string' || t === undefined && p.format) return 'string';
  return 'json';
}

function input(name, p, id, required) {
  const k = kind(p);
  const common = { id, name, 'aria-describedby': id + '-error', required: required && k !== 'boolean' };
  if (k === 'boolean') return h('input', { ...common, type: 'checkbox', role: 'switch', checked: p.default === true });
  if (k === 'enum') {
    return h('select', common, required ? null : h('option', { value: '', text: '(none)' }),
      p.enum.map(v => h('option', { value: JSON.stringify(v), text: String(v), selected: p.default === v })));
  }
  if (k === 'integer' || k === 'number') {
    return h('input', { ...common, type: 'number', step: k === 'integer' ? '1' : 'any',
      min: p.minimum ?? p.exclusiveMinimum, max: p.maximum ?? p.exclusiveMaximum, value: p.default ?? '' });
  }
  if (k === 'json') return h('textarea', { ...common, rows: 4, placeholder: 'JSON' });
  const type = { 'date-time': 'datetime-local', password: 'password', email: 'email', uri: 'url' }[p.format] || 'text';
  return h('input', { ...common, type, autocomplete: type === 'password' ? 'new-password' : 'off',
    minlength: p.minLength, maxlength: p.maxLength, value: p.default ?? '' });
}

// The value of one field, or an error message.
function read(el, p, required) {
  const k = kind(p);
  if (k === 'boolean') return { value: el.checked };
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

export function buildForm(schema, prefix) {
  const props = schema?.properties || {};
  const required = new Set(schema?.required || []);
  const fields = {};
  // Required fields first, the rest in the schema's order.
  const entries = Object.entries(props).sort((a, b) => required.has(b[0]) - required.has(a[0]));
  const el = h('div', { class: 'fields' }, entries.map(([name, p]) => {
    const id = `${prefix}-${name}`;
    const control = input(name, p, id, required.has(name));
    const err = h('span', { class: 'field-error', id: id + '-error', 'data-field': name });
    fields[name] = { control, err, p };
    const title = (p.title || name) + (required.has(name) ? ' *' : '');
    if (kind(p) === 'boolean') {
      return h('div', {}, h('label', { class: 'switch', for: id }, control, title), err);
    }
    return h('label', { for: id }, title, p.description ? h('span', { class: 'muted', text: ' ' + p.description }) : null, control, err);
  }));

  function clearErrors() {
    for (const f of Object.values(fields)) { f.err.textContent = ''; f.control.removeAttribute('aria-invalid'); }
  }
  function mark(name, message) {
    const f = fields[name];
    if (!f) return false;
    f.err.textContent = f.err.textContent ? f.err.textContent + '; ' + message : message;
    f.control.setAttribute('aria-invalid', 'true');
    return true;
  }
  return {
    el,
    values() {
      clearErrors();
      const args = {};
      let ok = true;
      for (const [name, f] of Object.entries(fields)) {
        const r = read(f.control, f.p, required.has(name));
        if (r.error) { ok = false; mark(name, r.error); } else if (r.value !== undefined) args[name] = r.value;
      }
      if (!ok) el.querySelector('[aria-invalid="true"]')?.focus();
      return { ok, args };
    },
    // Server `details` [{path, message}]: those naming a field are shown beside it; the rest
    // are returned for a general message.
    showErrors(details) {
      clearErrors();
      const rest = [];
      for (const d of details || []) {
        const name = String(d.path || '').replace(/^\/(arguments\/)?/, '').split('/')[0];
        if (!mark(decodeURIComponent(name.replace(/~1/g, '/').replace(/~0/g, '~')), d.message)) rest.push(d);
      }
      el.querySelector('[aria-invalid="true"]')?.focus();
      return rest;
    },
  };
}
