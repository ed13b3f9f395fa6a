// Calls to the broker's HTTP API with the session cookie (writes carry the CSRF token), and
// the event stream read with fetch so every event type and the `cut` event are seen.

let session = null;
let onEnded = () => {};

export function setSession(s) { session = s; }
export function getSession() { return session; }
export function whenSessionEnds(f) { onEnded = f; }

export class ApiError extends Error {
  constructor(status, error) {
    super(error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = error?.code;
    this.details = error?.details || [];
  }
}

export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && session) headers['X-CSRF-Token'] = session.csrf_token;
  const r = await fetch('/api' + path, {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let v = null;
  try { v = text ? JSON.parse(text) : null; } catch { v = null; }
  if (!r.ok) {
    if (r.status === 401 && session && !path.startsWith('/session')) onEnded();
    throw new ApiError(r.status, v?.error || { code: `http_${r.status}`, message: text });
  }
  return v;
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== '' && v !== undefined && v !== null) q.set(k, v);
  const s = q.toString();
  return s ? '?' + s : '';
}

// Follows `/api/events/stream` from `from_seq` (or the next event) with `filter`, calling
// `onEvent(cloudEvent)` once per seq in order, reconnecting after a cut or a dropped stream.
// Returns a function that stops it.
export function follow({ filter, from_seq }, onEvent, onState = () => {}) {
  const ctl = new AbortController();
  let last = from_seq ? from_seq - 1 : null;
  let stopped = false;
  async function run() {
    while (!stopped) {
      try {
        const headers = { Accept: 'text/event-stream' };
        if (last !== null) headers['Last-Event-ID'] = String(last);
        const r = await fetch('/api/events/stream' + query({ filter }), { headers, signal: ctl.signal });
        if (!r.ok) { onState('error', `stream refused: HTTP ${r.status}`); if (r.status === 401) { onEnded(); return; } }
        else {
          onState('live');
          await read(r.body, ev => {
            if (ev.event === 'cut') { last = JSON.parse(ev.data).resume_from - 1; return; }
            if (!ev.data) return;
            const seq = Number(ev.id);
            if (last !== null && seq <= last) return;
            last = seq;
            onEvent(JSON.parse(ev.data));
          });
        }
      } catch (e) {
        if (stopped) return;
        onState('error', e.message);
      }
      if (!stopped) await new Promise(r => setTimeout(r, 1000));
    }
  }
  run();
  return () => { stopped = true; ctl.abort(); };
}

async function read(body, emit) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let at;
    while ((at = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, at);
      buf = buf.slice(at + 2);
      const ev = { data: '' };
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const i = line.indexOf(':');
        const k = i < 0 ? line : line.slice(0, i);
        const v = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
        if (k === 'data') ev.data += (ev.data ? '\n' : '') + v;
        else ev[k] = v;
      }
      emit(ev);
    }
  }
}
