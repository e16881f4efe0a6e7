// The web console: a hash router and one function per page. Every
// element is built with h() from text, never from HTML strings, so nothing
// a job or a highlight holds can run as script.
import { call, watch, session, signIn, signOut, APIError } from './api.js';
import { parseSpec } from './spec.js';

let role = 'open';
let pageAbort = new AbortController();
const app = document.getElementById('app');

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const canWrite = () => role === 'operator' || role === 'open';
const word = (s, prefix) => (s || '').replace(prefix, '').toLowerCase();
const pct = (p) => `${Math.round(100 * Math.min(1, Math.max(0, p || 0)))}%`;
const when = (ts) => (ts ? new Date(ts).toLocaleString() : '–');
const secs = (v) => {
  const s = Math.round(Number(v) || 0);
  const m = Math.floor(s / 60);
  return m >= 60 ? `${Math.floor(m / 60)}:${String(m % 60).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}` : `${m}:${String(s % 60).padStart(2, '0')}`;
};
const bar = (p, label) => h('progress', { max: 100, value: Math.round(100 * (p || 0)), 'aria-label': label || 'progress' });
const jobState = (j) => word(j.state, 'JOB_STATE_');

function errorBox(err) {
  return h('p', { class: 'error', role: 'alert' }, err instanceof APIError ? `${err.code}: ${err.message}` : String(err));
}

function render(...nodes) {
  app.replaceChildren(...nodes);
}

// ---- Farm: jobs (paged, live), agents, cluster health.
const PAGE = 50;

async function farm(params) {
  const offset = Math.max(0, Number(params.get('offset')) || 0);
  const [list, status, agents] = await Promise.all([
    call('JobService', 'ListJobs', { limit: PAGE, offset }),
    call('ClusterService', 'GetStatus').catch(() => null),
    call('ClusterService', 'ListAgents').catch(() => ({ agents: [] })),
  ]);
  const jobs = list.jobs || [];
  const rows = new Map();
  const tbody = h('tbody', {}, jobs.map((j) => {
    const row = jobRow(j);
    rows.set(j.id, row);
    return row;
  }));
  const total = list.total || 0;
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' },
    offset > 0 ? h('a', { href: `#/?offset=${Math.max(0, offset - PAGE)}` }, '← newer') : null,
    h('span', {}, ` ${total ? offset + 1 : 0}–${offset + jobs.length} of ${total} jobs (${list.unfinished || 0} unfinished) `),
    offset + PAGE < total ? h('a', { href: `#/?offset=${offset + PAGE}` }, 'older →') : null);
  const members = status ? (status.members || []) : [];
  render(
    h('h1', {}, 'Farm'),
    status ? h('p', { class: 'health' }, `Leader ${status.leaderId || 'none'} · ${members.filter((m) => m.alive).length}/${members.length || 1} coordinators alive · applied index ${status.appliedIndex}`) : null,
    h('section', {}, h('h2', {}, 'Jobs'), pager,
      h('table', { class: 'jobs' }, h('thead', {}, h('tr', {}, ['Job', 'Name', 'State', 'Progress', 'Created'].map((c) => h('th', {}, c)))), tbody)),
    h('section', {}, h('h2', {}, 'Agents'), agentTable(agents.agents || [], false)),
  );
  // Live progress: a stream per running job on the page, a few at most (a
  // browser keeps six connections to a host); when one ends, the list is
  // read again. With none open but jobs queued, the list is read every 5 s.
  const signal = pageAbort.signal;
  const running = jobs.filter((j) => jobState(j) === 'running').slice(0, MAX_STREAMS);
  for (const j of running) {
    watch(j.id, (nj) => {
      const row = jobRow(nj);
      rows.get(j.id)?.replaceWith(row);
      rows.set(j.id, row);
    }, signal).then(() => { if (!signal.aborted) route(); }).catch(() => {});
  }
  if (!running.length && jobs.some((j) => jobState(j) === 'queued')) {
    setTimeout(() => { if (!signal.aborted) route(); }, 5000);
  }
}

const MAX_STREAMS = 4;

function jobRow(j) {
  return h('tr', { 'data-job': j.id, 'data-state': jobState(j) },
    h('td', {}, h('a', { href: `#/job/${j.id}` }, j.id)),
    h('td', {}, j.name || ''),
    h('td', { class: `state ${jobState(j)}` }, jobState(j)),
    h('td', {}, bar(j.progress, `progress of ${j.id}`), ` ${pct(j.progress)}`),
    h('td', {}, when(j.createdAt)));
}

function agentTable(agents, actions) {
  return h('table', { class: 'agents' },
    h('thead', {}, h('tr', {}, ['Agent', 'State', 'Speed', 'Tasks', 'Idle because', 'Schedule', actions && canWrite() ? 'Actions' : null].filter(Boolean).map((c) => h('th', {}, c)))),
    h('tbody', {}, agents.map((a) => h('tr', {},
      h('td', {}, a.name || a.id),
      h('td', {}, word(a.state, 'AGENT_STATE_'), a.stateReason ? ` (${a.stateReason})` : ''),
      h('td', {}, a.status && a.status.speed ? `${a.status.speed.toFixed(1)}× realtime` : '–'),
      h('td', {}, (a.currentTasks || []).join(', ') || '–', ` ${a.slotsInUse || 0}/${a.slots || 0}`),
      h('td', {}, a.idleReason || '–'),
      h('td', {}, a.schedule || 'always'),
      actions && canWrite() ? h('td', {},
        h('button', { onclick: () => act(() => call('ClusterService', 'DrainAgent', { agentId: a.id, drain: word(a.state, 'AGENT_STATE_') !== 'draining' })) },
          word(a.state, 'AGENT_STATE_') === 'draining' ? 'Undrain' : 'Drain'),
        h('form', { class: 'inline', onsubmit: (e) => { e.preventDefault(); act(() => call('ClusterService', 'SetAgentSchedule', { agentId: a.id, schedule: e.target.elements.schedule.value })); } },
          h('input', { name: 'schedule', value: a.schedule || '', placeholder: 'mon-fri 22:00-07:00', 'aria-label': `schedule of ${a.name || a.id}` }),
          h('button', {}, 'Set hours'))) : null))));
}

async function act(f) {
  try {
    await f();
    route();
  } catch (e) {
    app.prepend(errorBox(e));
  }
}

// ---- Job: tasks, attempts, errors, timeline; cancel; submit again.
async function job(id) {
  const first = (await call('JobService', 'GetJob', { jobId: id })).job;
  const holder = h('div');
  const draw = (j) => holder.replaceChildren(jobView(j));
  draw(first);
  render(h('h1', {}, `Job ${id}`), holder);
  if (!['succeeded', 'failed', 'canceled'].includes(jobState(first))) {
    await watch(id, draw, pageAbort.signal).catch((e) => { if (e.name !== 'AbortError') holder.prepend(errorBox(e)); });
  }
}

function jobView(j) {
  const st = jobState(j);
  const done = ['succeeded', 'failed', 'canceled'].includes(st);
  return h('div', { class: 'job', 'data-state': st },
    h('p', {}, h('strong', {}, j.name || j.id), ` — `, h('span', { class: `state ${st}`, id: 'job-state' }, st), ` · `, bar(j.progress), ` ${pct(j.progress)}`),
    j.error ? h('p', { class: 'error' }, j.error) : null,
    (j.warnings || []).map((w) => h('p', { class: 'warning' }, w)),
    j.waitingFor ? h('p', { class: 'warning' }, j.waitingFor) : null,
    h('p', { class: 'actions' },
      !done && canWrite() ? h('button', { id: 'cancel', onclick: () => act(() => call('JobService', 'CancelJob', { jobId: j.id })) }, 'Cancel') : null,
      canWrite() ? h('a', { class: 'button', href: `#/submit?from=${j.id}` }, 'Submit again') : null,
      st === 'succeeded' ? h('a', { class: 'button', href: `#/montage/${j.id}` }, 'Open the montage') : null),
    h('dl', { class: 'timeline' }, h('dt', {}, 'Created'), h('dd', {}, when(j.createdAt)), h('dt', {}, 'Updated'), h('dd', {}, when(j.updatedAt))),
    j.taskSummary ? h('p', {}, `${j.taskSummary.tasks} tasks (${j.taskSummary.cached || 0} from the cache); details were compacted`) : null,
    h('table', { class: 'tasks' },
      h('thead', {}, h('tr', {}, ['Task', 'Type', 'State', 'Attempts', 'Progress', 'Agent', 'Error'].map((c) => h('th', {}, c)))),
      h('tbody', {}, (j.tasks || []).map((t) => h('tr', { 'data-task': t.id, 'data-state': word(t.state, 'TASK_STATE_') },
        h('td', {}, t.id),
        h('td', {}, word(t.type, 'TASK_TYPE_'), t.chunks > 1 ? ` ${t.chunk + 1}/${t.chunks}` : ''),
        h('td', {}, word(t.state, 'TASK_STATE_')),
        h('td', {}, `${t.attempts || 0}/${t.maxAttempts || 0}`),
        h('td', {}, bar(t.progress, `progress of ${t.id}`), ` ${pct(t.progress)}`),
        h('td', {}, t.cached ? '(cache)' : t.agentId || '–'),
        h('td', {}, t.error ? h('pre', { class: 'ffmpeg' }, t.error) : '–'))))));
}

// ---- Submit: a spec pasted or uploaded (JSON), or the form.
function submit(params) {
  const example = { name: 'My montage', profile: { resolution: '1280x720', fps: 30 }, highlights: [{ url: 'http://127.0.0.1:7480/vod-a.mp4', at: '0:05', duration: 10, title: 'Opening play' }] };
  const out = h('div', { id: 'submit-result', 'aria-live': 'polite' });
  const rowsBody = h('tbody');
  const addRow = (hl = {}) => {
    const i = rowsBody.children.length;
    rowsBody.append(h('tr', {},
      ['url', 'at', 'duration', 'title'].map((f) => h('td', {},
        h('input', { name: `highlights[${i}].${f}`, 'data-field': `highlights[${i}].${f}`, value: hl[f] ?? '', 'aria-label': `highlight ${i + 1} ${f}`, placeholder: f }),
        h('span', { class: 'field-error', 'data-error-for': `highlights[${i}].${f}` })))));
  };
  addRow(example.highlights[0]);
  const form = h('form', { id: 'spec-form', onsubmit: (e) => { e.preventDefault(); send(fromForm(form), false); } },
    h('label', {}, 'Name ', h('input', { name: 'name', 'data-field': 'name', value: example.name })), h('span', { class: 'field-error', 'data-error-for': 'name' }),
    h('fieldset', {}, h('legend', {}, 'Profile'),
      field('profile.resolution', 'Resolution', '1280x720'), field('profile.fps', 'FPS', '30'),
      field('profile.video_codec', 'Codec', 'h264'), field('profile.quality', 'Quality (CRF)', '23'),
      field('profile.fade', 'Fade (s)', ''), field('profile.loudness', 'Loudness (LUFS or off)', '')),
    h('table', { class: 'highlights-form' }, h('thead', {}, h('tr', {}, ['URL', 'At', 'Duration', 'Title'].map((c) => h('th', {}, c)))), rowsBody),
    h('button', { type: 'button', onclick: () => addRow() }, 'Add a highlight'), ' ',
    h('button', { type: 'submit', id: 'submit-form' }, 'Submit'));
  const text = h('textarea', { id: 'spec-text', 'data-field': 'spec', rows: 12, 'aria-label': 'job spec, YAML or JSON' },
    'name: My montage\nprofile: {resolution: 1280x720, fps: 30}\nhighlights:\n  - {url: "http://127.0.0.1:7480/vod-a.mp4", at: "0:05", duration: 10, title: Opening play}\n');
  const pasted = h('form', { id: 'spec-paste', onsubmit: (e) => {
    e.preventDefault();
    let s;
    try { s = parseSpec(text.value); } catch (err) {
      pasted.querySelector('[data-error-for="spec"]').textContent = err.message;
      return;
    }
    send(s, true);
  } },
    text, h('span', { class: 'field-error', 'data-error-for': 'spec' }),
    h('p', {}, h('label', {}, 'or a file: ', h('input', { type: 'file', accept: '.yaml,.yml,.json,application/json', onchange: async (e) => { text.value = await e.target.files[0].text(); } })),
      ' ', h('button', { type: 'submit', id: 'submit-paste' }, 'Submit this spec')));
  // send submits; a validation error goes to the field it names (or, for
  // a pasted spec, beside the spec).
  async function send(spec, pastedSpec) {
    for (const el of app.querySelectorAll('.field-error')) el.textContent = '';
    for (const el of app.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
    try {
      const r = await call('JobService', 'SubmitJob', { spec, idempotencyKey: crypto.randomUUID() });
      location.hash = `#/job/${r.job.id}`;
    } catch (e) {
      const f = e.field;
      const scope = pastedSpec ? pasted : form;
      const slot = !f ? null : pastedSpec ? scope.querySelector('[data-error-for="spec"]')
        : scope.querySelector(`[data-error-for="${CSS.escape(f)}"]`) || scope.querySelector(`[data-error-for="${CSS.escape(f.split('.').slice(0, -1).join('.'))}"]`);
      if (slot) {
        slot.textContent = e.message;
        scope.querySelector(`[data-field="${CSS.escape(pastedSpec ? 'spec' : f)}"]`)?.setAttribute('aria-invalid', 'true');
      } else {
        out.replaceChildren(errorBox(e));
      }
    }
  }
  render(h('h1', {}, 'Submit a montage'), out, h('h2', {}, 'Highlights'), form, h('h2', {}, 'Or paste a spec (YAML or JSON, as montagectl reads)'), pasted);
  const from = params.get('from');
  if (from) {
    call('JobService', 'GetJob', { jobId: from }).then((r) => { text.value = JSON.stringify(r.job.spec, null, 2); text.focus(); }).catch(() => {});
  }
}

function field(name, label, value) {
  return h('label', {}, `${label} `, h('input', { name, 'data-field': name, value }), h('span', { class: 'field-error', 'data-error-for': name }));
}

function fromForm(form) {
  const s = { name: form.elements.name.value, profile: {}, highlights: [] };
  for (const el of form.querySelectorAll('input[name^="profile."]')) {
    const k = el.name.slice(8);
    if (el.value === '') continue;
    s.profile[k] = ['fps', 'quality'].includes(k) ? Number(el.value) : el.value;
  }
  for (const tr of form.querySelectorAll('.highlights-form tbody tr')) {
    const v = (f) => tr.querySelector(`input[name$=".${f}"]`).value;
    if (!v('url')) continue;
    s.highlights.push({ url: v('url'), at: v('at'), duration: v('duration'), title: v('title') });
  }
  return s;
}

// ---- Montages: the catalog, and one montage with its player.
async function montages(params) {
  const q = { streamer: params.get('streamer') || '', schedule: params.get('schedule') || '', since: params.get('since') || '' };
  let list;
  try {
    list = await call('MontageService', 'ListMontages', q);
  } catch (e) {
    if (e.code === 'unimplemented' || e.code === '404') return render(h('h1', {}, 'Montages'), h('p', {}, 'This coordinator has no catalog.'));
    throw e;
  }
  const filters = h('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); const p = new URLSearchParams(new FormData(e.target)); location.hash = `#/montages?${p}`; } },
    ['streamer', 'schedule', 'since'].map((k) => h('label', {}, `${k} `, h('input', { name: k, value: q[k], placeholder: k === 'since' ? 'YYYY-MM-DD' : '' }))), h('button', {}, 'Filter'));
  render(h('h1', {}, 'Montages'), filters,
    h('ul', { class: 'cards' }, (list.montages || []).map((m) => h('li', {},
      h('a', { href: `#/montage/${m.jobId}` }, h('strong', {}, m.name || m.jobId)),
      h('p', {}, `${when(m.finishedAt)} · ${secs(m.durationSeconds)} · ${(m.streamers || []).join(', ') || 'no streamer'}${m.mediaExpiredAt ? ' · media expired' : ''}`)))),
    (list.montages || []).length ? null : h('p', {}, 'No montages yet.'));
}

async function montage(id) {
  const m = (await call('MontageService', 'GetMontage', { jobId: id })).montage;
  const link = async (output) => (await call('JobService', 'GetOutputURL', { jobId: id, output, ttlSeconds: 24 * 3600 })).url;
  const outputs = Object.keys(m.outputs || {});
  const urls = {};
  await Promise.all(outputs.map(async (o) => { urls[o] = await link(o).catch(() => ''); }));
  const video = urls.montage ? h('video', { id: 'player', controls: true, preload: 'metadata', src: urls.montage, poster: urls.thumbnail || null, playsinline: true },
    urls.vtt ? h('track', { kind: 'subtitles', label: 'Transcript', src: urls.vtt, default: true }) : null) : h('p', {}, 'The media expired; this entry stays.');
  const chapters = h('ol', { class: 'chapters', id: 'chapters' }, (m.chapters || []).map((c) => h('li', {},
    h('button', { 'data-start': c.startSeconds || 0, onclick: () => { video.currentTime = Number(c.startSeconds || 0); video.play?.().catch(() => {}); } },
      `${secs(c.startSeconds)} ${c.title}`))));
  const share = urls.montage ? h('p', {}, 'Share: ', h('input', { readonly: true, value: urls.montage, id: 'share', 'aria-label': 'share link', onfocus: (e) => e.target.select() })) : null;
  render(h('h1', {}, m.name || id),
    h('p', {}, `${secs(m.durationSeconds)} · ${((m.sizeBytes || 0) / 1048576).toFixed(1)} MiB · finished ${when(m.finishedAt)}`, m.schedule ? ` · schedule ${m.schedule}` : ''),
    h('div', { class: 'player' }, video, h('div', {}, h('h2', {}, 'Chapters'), chapters)),
    share,
    h('h2', {}, 'Downloads'), h('ul', {}, outputs.map((o) => h('li', {}, urls[o] ? h('a', { href: urls[o], download: '' }, o) : o))),
    h('p', {}, h('a', { href: `#/job/${id}` }, 'The job')));
}

// ---- Agents, schedules, highlights.
async function agents() {
  const r = await call('ClusterService', 'ListAgents');
  render(h('h1', {}, 'Agents'), agentTable(r.agents || [], true));
}

async function schedules() {
  let r;
  try {
    r = await call('ScheduleService', 'ListSchedules');
  } catch (e) {
    return render(h('h1', {}, 'Schedules'), h('p', {}, `Schedules are not available here (${e.message}).`));
  }
  render(h('h1', {}, 'Schedules'), (r.schedules || []).length ? null : h('p', {}, 'No schedules. montagectl schedule add makes one.'),
    h('ul', { class: 'cards' }, (r.schedules || []).map((s) => h('li', {},
      h('strong', {}, s.name), ` ${s.cron} ${s.tz || 'UTC'} · ${s.group} · ${s.paused ? 'paused' : 'active'} · next ${when(s.nextSlot)}`,
      canWrite() ? h('p', {},
        h('button', { onclick: () => act(() => call('ScheduleService', 'SetSchedulePaused', { name: s.name, paused: !s.paused })) }, s.paused ? 'Resume' : 'Pause'), ' ',
        h('button', { onclick: () => act(() => call('ScheduleService', 'RunSchedule', { name: s.name })) }, 'Fire the current slot')) : null,
      h('ul', {}, (s.history || []).slice(-5).map((f) => h('li', {}, `${when(f.slot)}: `, (f.jobIds || []).map((id) => h('a', { href: `#/job/${id}` }, `${id} `)), f.note || '')))))));
}

async function highlights(params) {
  const q = { streamer: params.get('streamer') || '', since: params.get('since') || '', tag: params.get('tag') || '', limit: 200 };
  let r;
  try {
    r = await call('HighlightService', 'ListHighlights', q);
  } catch (e) {
    return render(h('h1', {}, 'Highlights'), h('p', {}, `The library is not available here (${e.message}).`));
  }
  const filters = h('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); location.hash = `#/highlights?${new URLSearchParams(new FormData(e.target))}`; } },
    ['streamer', 'since', 'tag'].map((k) => h('label', {}, `${k} `, h('input', { name: k, value: q[k] }))), h('button', {}, 'Filter'));
  render(h('h1', {}, 'Highlights'), filters, h('p', {}, `${r.total || 0} match`),
    h('table', {}, h('thead', {}, h('tr', {}, ['Streamer', 'Date', 'At', 'Duration', 'Score', 'Title', 'Source'].map((c) => h('th', {}, c)))),
      h('tbody', {}, (r.highlights || []).map((x) => h('tr', {}, h('td', {}, x.streamer), h('td', {}, x.date || '–'), h('td', {}, x.at), h('td', {}, x.duration),
        h('td', {}, x.score || 0), h('td', {}, x.title || ''), h('td', {}, h('a', { href: x.url, rel: 'noreferrer' }, 'source')))))));
}

// ---- Sign-in.
function signInPage(msg) {
  const input = h('input', { type: 'password', name: 'token', id: 'token', autocomplete: 'current-password', 'aria-label': 'token' });
  const out = h('p', { 'aria-live': 'polite' }, msg || '');
  render(h('h1', {}, 'Sign in'), h('p', {}, 'With the operator token, or the viewer token to look without changing anything.'),
    h('form', { id: 'signin', onsubmit: async (e) => { e.preventDefault(); try { role = await signIn(input.value); showWho(); location.hash = '#/'; route(); } catch (err) { out.replaceChildren(errorBox(err)); } } },
      input, ' ', h('button', {}, 'Sign in')), out);
}

function showWho() {
  const who = document.getElementById('who');
  who.replaceChildren(role === 'open' ? 'open farm (dev)' : role ? `signed in: ${role}` : '');
  if (role && role !== 'open') who.append(h('button', { class: 'link', onclick: async () => { await signOut(); role = ''; showWho(); signInPage(); } }, 'Sign out'));
  for (const a of document.querySelectorAll('[data-needs="operator"]')) a.hidden = !canWrite();
}

async function route() {
  pageAbort.abort();
  pageAbort = new AbortController();
  const [path, query] = (location.hash.slice(1) || '/').split('?');
  const params = new URLSearchParams(query || '');
  const parts = path.split('/').filter(Boolean);
  if (!role) return signInPage();
  try {
    switch (parts[0]) {
      case undefined: return await farm(params);
      case 'job': return await job(decodeURIComponent(parts[1]));
      case 'submit': return canWrite() ? submit(params) : render(h('p', { class: 'error' }, 'The viewer token cannot submit.'));
      case 'montages': return await montages(params);
      case 'montage': return await montage(decodeURIComponent(parts[1]));
      case 'agents': return await agents();
      case 'schedules': return await schedules();
      case 'highlights': return await highlights(params);
      case 'signin': return signInPage();
      default: return render(h('p', {}, 'No such page.'));
    }
  } catch (e) {
    if (e.name === 'AbortError') return;
    if (e.code === 'unauthenticated') return signInPage('Your session has ended; sign in again.');
    render(errorBox(e));
  }
}

window.addEventListener('hashchange', route);
session().then((r) => { role = r; showWho(); route(); }).catch((e) => render(errorBox(e)));
