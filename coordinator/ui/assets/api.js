// A client of the coordinator's Connect API (JSON over HTTP): the same
// calls montagectl makes. The session cookie carries the token; the
// Connect-Protocol-Version header marks calls from this page's script.

export class APIError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
  // The field a validation error names ("highlights[0].duration: …").
  get field() {
    if (this.code !== 'invalid_argument') return '';
    const m = /^([a-z_]+(\[\d+\])?(\.[a-z_]+(\[\d+\])?)*): /.exec(this.message);
    return m ? m[1] : '';
  }
}

const headers = { 'Content-Type': 'application/json', 'Connect-Protocol-Version': '1' };

export async function call(service, method, body = {}) {
  const r = await fetch(`/montage.v1.${service}/${method}`, {
    method: 'POST', headers, body: JSON.stringify(body), credentials: 'same-origin',
  });
  const text = await r.text();
  let data = {};
  try { data = text ? JSON.parse(text) : {}; } catch { data = { message: text }; }
  if (!r.ok) throw new APIError(data.code || String(r.status), data.message || r.statusText);
  return data;
}

// watch streams WatchJob: onJob gets the job at each change; it resolves
// when the job ends or signal aborts. One open stream, no polling.
export async function watch(jobId, onJob, signal) {
  const body = new TextEncoder().encode(JSON.stringify({ jobId }));
  const frame = new Uint8Array(5 + body.length);
  new DataView(frame.buffer).setUint32(1, body.length);
  frame.set(body, 5);
  const r = await fetch('/montage.v1.JobService/WatchJob', {
    method: 'POST', signal, credentials: 'same-origin',
    headers: { 'Content-Type': 'application/connect+json', 'Connect-Protocol-Version': '1' }, body: frame,
  });
  if (!r.ok) {
    let data = {};
    try { data = await r.json(); } catch { /* not JSON */ }
    throw new APIError(data.code || String(r.status), data.message || r.statusText);
  }
  const reader = r.body.getReader();
  let buf = new Uint8Array(0);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    const joined = new Uint8Array(buf.length + value.length);
    joined.set(buf);
    joined.set(value, buf.length);
    buf = joined;
    while (buf.length >= 5) {
      const flags = buf[0];
      const len = new DataView(buf.buffer, buf.byteOffset).getUint32(1);
      if (buf.length < 5 + len) break;
      const msg = JSON.parse(new TextDecoder().decode(buf.subarray(5, 5 + len)));
      buf = buf.slice(5 + len);
      if (flags & 2) {
        if (msg.error) throw new APIError(msg.error.code, msg.error.message);
        return;
      }
      onJob(msg.job);
    }
  }
}

export async function session() {
  const r = await fetch('/ui/session', { credentials: 'same-origin' });
  return (await r.json()).role;
}

export async function signIn(token) {
  const r = await fetch('/ui/session', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token }) });
  if (!r.ok) throw new APIError('unauthenticated', (await r.text()).trim());
  return (await r.json()).role;
}

export async function signOut() {
  await fetch('/ui/session', { method: 'DELETE' });
}
