// UI plugins: listed by `GET /api/ui-plugins`, mounted in sandboxed iframes (scripts and
// forms only, no same origin) as a page (`navigation`) or from a button on a matching task
// (`task-action`) or entity (`entity-action`). The console sends the plugin
// `{type: "extbus.context", object, point, token, expires_at, api}` (again before the
// short-lived token expires) and listens for `extbus.refresh` and `extbus.notify` from it;
// any other message is ignored.

import { api } from './api.js';
import { h, clear, toast } from './dom.js';

export async function load() {
  try { return (await api('GET', '/ui-plugins')).ui_plugins || []; } catch { return []; }
}

function matches(point, type, obj) {
  if (point.type !== type) return false;
  if (type === 'task-action') return !point.operation || point.operation === obj.operation;
  if (type === 'entity-action') return !point.entity_type || point.entity_type === obj.type;
  return false;
}

// Buttons for the plugins with an extension point of `type` matching `obj`; a click mounts
// the plugin into `slot`.
export function buttonsFor(ctx, type, obj, slot, refresh) {
  return (ctx.plugins || []).filter(p => p.extension_points.some(e => matches(e, type, obj))).map(p =>
    h('button', { type: 'button', class: 'secondary plugin-button', 'data-plugin': `${p.extension}/${p.name}`,
      text: p.title, onclick: () => mount(slot, p, obj, type, refresh) }));
}

export function page(root, ctx, extension, name) {
  const p = (ctx.plugins || []).find(x => x.extension === extension && x.name === name);
  if (!p) { clear(root, h('h1', { text: 'Plugin' }), h('p', { class: 'error', text: `No UI plugin ${extension}/${name}.` })); return; }
  document.title = `${p.title} - extbus console`;
  const slot = h('div', { class: 'plugin-slot' });
  clear(root, h('h1', { text: p.title }), slot);
  return mount(slot, p, null, 'navigation', () => {});
}

function mount(slot, plugin, object, point, refresh) {
  const frame = h('iframe', { class: 'plugin', title: plugin.title, sandbox: 'allow-scripts allow-forms',
    referrerpolicy: 'no-referrer', src: plugin.entry });
  let timer = null;
  const send = async () => {
    clearTimeout(timer);
    if (!frame.isConnected) return;
    try {
      const t = await api('POST', '/session/token');
      // An opaque-origin frame can only be addressed with '*'; the frame is ours by reference.
      frame.contentWindow?.postMessage({ type: 'extbus.context', object, point, token: t.token,
        expires_at: t.expires_at, api: '/api' }, '*');
      const left = new Date(t.expires_at).getTime() - Date.now();
      timer = setTimeout(send, Math.max(5000, left * 0.8));
    } catch (e) { toast('error', `${plugin.title}: ${e.message}`); }
  };
  const onMessage = e => {
    if (!frame.isConnected) { window.removeEventListener('message', onMessage); clearTimeout(timer); return; }
    if (e.source !== frame.contentWindow || typeof e.data !== 'object' || e.data === null) return;
    if (e.data.type === 'extbus.refresh') refresh();
    else if (e.data.type === 'extbus.notify' && typeof e.data.text === 'string') {
      toast(e.data.level === 'error' ? 'error' : 'info', `${plugin.title}: ${e.data.text}`);
    }
  };
  window.addEventListener('message', onMessage);
  frame.addEventListener('load', send);
  clear(slot, frame);
  return () => { clearTimeout(timer); window.removeEventListener('message', onMessage); };
}
