// The tickq dashboard: a single-page client of the HTTP API (docs/api.md), nothing else.
//
// Routing is in the URL hash (`#/queues/default?state=dead&q=foo`), so every page and filter is
// a bookmarkable URL, back/forward work, and the server needs no route of its own.
// Live updates come from one EventSource on /api/events; the page never polls the API. It
// re-reads what it shows when an event says that something it shows changed, and once after
// the stream reconnects (events sent while it was down are lost).

// `waiting`: a workflow step whose parents have not all ended.
const STATES = ['waiting', 'scheduled', 'pending', 'active', 'retry', 'dead', 'completed', 'cancelled'];
const WAITING = ['waiting', 'scheduled', 'pending', 'retry'];
// Which one-job actions the API accepts in which state (the Lua scripts' rules).
const ACTIONS = {
  retry: ['dead', 'cancelled', 'retry', 'scheduled'],
  kill: WAITING,
  cancel: [...WAITING, 'active'],
  delete: STATES.filter((s) => s !== 'active'),
};
const DESTRUCTIVE = new Set(['kill', 'cancel', 'delete']);
const DONE = { retry: 'Retried', kill: 'Killed', cancel: 'Cancelled', delete: 'Deleted' };
const PAGE = 50;
// A filtered page may come back short (the API bounds how many jobs one request examines):
// keep following the cursor until the page is full, at most this many requests.
const SEARCH_REQUESTS = 40;

const app = {
  auth: false,
  role: null,
  stats: null, // the /api/stats document, kept current by `counts` events
  view: null,
  events: null,
};

// ---------------------------------------------------------------------------------------------
// Small helpers

/** Build an element: h('a', {href: '#/'}, 'text', child...). Text is never parsed as HTML. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** Replace an element's children; arrays are flattened, null and false skipped. */
function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

function svg(tag, attrs) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  return el;
}

const nf = new Intl.NumberFormat();
const num = (n) => (n === null || n === undefined ? '–' : nf.format(n));
const enc = encodeURIComponent;

/** "3m ago" / "in 5s", from an RFC 3339 time. */
function relative(iso) {
  if (!iso) return '–';
  const ms = Date.parse(iso) - Date.now();
  const s = Math.round(Math.abs(ms) / 1000);
  let text;
  if (s < 1) return 'now';
  if (s < 60) text = `${s}s`;
  else if (s < 3600) text = `${Math.floor(s / 60)}m ${s % 60}s`;
  else if (s < 86400) text = `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  else text = `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
  return ms < 0 ? `${text} ago` : `in ${text}`;
}

/** A <time> that shows a relative time and keeps it current (see tickClocks). */
function when(iso) {
  if (!iso) return h('span', { class: 'muted' }, '–');
  return h('time', { datetime: iso, title: iso, dataset: { rel: '1' } }, relative(iso));
}

function tickClocks() {
  for (const t of document.querySelectorAll('time[data-rel]')) {
    t.textContent = relative(t.getAttribute('datetime'));
  }
}

function excerpt(value, max = 90) {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  if (text === undefined) return '';
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

function stateTag(state) {
  return h('span', { class: `tag state-${state}` }, state);
}

/** True when the caller may act (operator token, or no auth configured). */
function canAct() {
  return app.role === 'operator' || (!app.auth && app.role !== 'read');
}

// ---------------------------------------------------------------------------------------------
// The API

class ApiError extends Error {
  constructor(status, kind, message) {
    super(message);
    this.status = status;
    this.kind = kind;
  }
}

async function api(method, path, body) {
  const init = { method, headers: { accept: 'application/json' }, credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'unavailable', `the tickq server cannot be reached (${e.message})`);
  }
  const text = await res.text();
  let doc = null;
  if (text) {
    try {
      doc = JSON.parse(text);
    } catch {
      doc = null;
    }
  }
  if (!res.ok) {
    const err = doc && doc.error;
    const e = new ApiError(
      res.status,
      (err && err.kind) || `http_${res.status}`,
      (err && err.message) || `${method} ${path} answered HTTP ${res.status}`,
    );
    if (res.status === 401 && path !== '/api/login') {
      app.role = null;
      go(`/login?next=${enc(currentHash())}`, true);
    }
    throw e;
  }
  return doc;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

// ---------------------------------------------------------------------------------------------
// Banner, confirm dialog

let bannerTimer = null;
function say(text, kind = 'ok') {
  const b = document.getElementById('banner');
  b.className = kind;
  fill(b, h('span', { id: 'banner-text' }, text),
    h('button', { type: 'button', class: 'link', onclick: () => { b.hidden = true; } }, 'dismiss'));
  b.hidden = false;
  clearTimeout(bannerTimer);
  if (kind === 'ok') bannerTimer = setTimeout(() => { b.hidden = true; }, 8000);
}

function fail(e) {
  say(e instanceof ApiError ? `${e.message} (${e.kind})` : String(e.message || e), 'error');
}

/** Ask before acting; resolves true when the user confirms. */
function ask(text, okLabel) {
  const d = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-ok').textContent = okLabel;
  d.returnValue = '';
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
    d.showModal();
  });
}

/** Run an action from a button: disable it meanwhile, report errors in the banner. */
async function act(button, fn) {
  if (button) button.disabled = true;
  try {
    await fn();
  } catch (e) {
    fail(e);
  } finally {
    if (button) button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Routing

function currentHash() {
  return location.hash.slice(1) || '/';
}

function parseRoute() {
  const raw = currentHash();
  const [path, qs] = raw.split('?', 2);
  const params = Object.fromEntries(new URLSearchParams(qs || ''));
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { path, parts, params };
}

/** Navigate within the app; `replace` keeps the current entry out of the history. */
function go(path, replace = false) {
  const hash = `#${path}`;
  if (location.hash === hash) return route();
  if (replace) {
    history.replaceState(null, '', hash);
    route();
  } else {
    location.hash = hash;
  }
}

function href(path, params) {
  return `#${path}${query(params || {})}`;
}

const VIEWS = {
  overview: () => new Overview(),
  queue: (r) => new QueuePage(r.parts[1], r.params),
  job: (r) => new JobPage(r.parts[1]),
  dead: (r) => new DeadPage(r.params),
  schedules: () => new Schedules(),
  nodes: () => new Nodes(),
  locks: () => new Locks(),
  flows: () => new Flows(),
};

function viewFor(r) {
  const [first, second] = r.parts;
  if (!first) return ['overview', VIEWS.overview(r)];
  if (first === 'queues' && second) return ['overview', VIEWS.queue(r)];
  if (first === 'jobs' && second) return ['', VIEWS.job(r)];
  if (first === 'flows' && second && r.parts.length === 2) return ['flows', new FlowPage(second)];
  if (VIEWS[first] && !second && first !== 'queue' && first !== 'job') return [first, VIEWS[first](r)];
  return ['', new NotFound(r.path)];
}

async function route() {
  const r = parseRoute();
  // A success note belongs to the page it was said on; errors stay until dismissed.
  const banner = document.getElementById('banner');
  if (banner.className === 'ok') banner.hidden = true;
  if (app.view && app.view.leave) app.view.leave();
  app.view = null;
  document.body.classList.toggle('logged-out', r.parts[0] === 'login');
  if (r.parts[0] === 'login') {
    markNav('');
    return showLogin(r.params.next || '/');
  }
  if (app.auth && !app.role) return go(`/login?next=${enc(currentHash())}`, true);
  const [nav, view] = viewFor(r);
  markNav(nav);
  app.view = view;
  const main = document.getElementById('main');
  fill(main, view.root);
  document.title = `${view.title || 'tickq'} · tickq`;
  try {
    await view.load();
  } catch (e) {
    if (app.view === view) view.failed(e);
  }
}

function markNav(name) {
  for (const a of document.querySelectorAll('#nav a')) {
    a.classList.toggle('current', a.dataset.nav === name);
  }
}

// ---------------------------------------------------------------------------------------------
// Live updates

function connectEvents() {
  if (app.events) return;
  const live = document.getElementById('live');
  let broken = false;
  const es = new EventSource('/api/events');
  app.events = es;
  es.addEventListener('open', () => {
    live.classList.add('on');
    live.title = 'live updates: connected';
    if (broken) {
      // Events sent while the stream was down are gone: read again what the page shows.
      broken = false;
      refreshStats().then(() => app.view && app.view.reload && app.view.reload()).catch(fail);
    }
  });
  es.addEventListener('error', () => {
    broken = true;
    live.classList.remove('on');
    live.title = 'live updates: reconnecting';
    if (es.readyState === EventSource.CLOSED) {
      // The server refused the stream (logged out, restarted with other tokens): EventSource
      // gives up by itself in that case, so check who we are and open a new one.
      app.events = null;
      setTimeout(() => whoami().then(() => app.role || !app.auth ? connectEvents() : route()).catch(() => {
        setTimeout(connectEvents, 5000);
      }), 2000);
    }
  });
  es.addEventListener('counts', (ev) => {
    const doc = JSON.parse(ev.data);
    setStats(doc);
  });
  // The server missed changes (its reader fell behind): like after a reconnect, read again.
  es.addEventListener('gap', () => {
    refreshStats().then(() => app.view && app.view.reload && app.view.reload()).catch(fail);
  });
  es.addEventListener('jobs', (ev) => {
    const doc = JSON.parse(ev.data);
    if (app.view && app.view.onJobs) app.view.onJobs(doc.events || [], doc.dropped || 0);
  });
}

function disconnectEvents() {
  if (!app.events) return;
  app.events.close();
  app.events = null;
  const live = document.getElementById('live');
  live.classList.remove('on');
  live.title = 'live updates: paused while the page is hidden';
}

/** Back from hidden: listen again and read what the page shows (changes were missed). */
function resume() {
  if (app.events || (app.auth && !app.role)) return;
  connectEvents();
  refreshStats().then(() => app.view && app.view.reload && app.view.reload()).catch(fail);
}

function setStats(doc) {
  app.stats = doc;
  const dead = (doc.queues || []).reduce((n, q) => n + (q.states.dead || 0), 0);
  const badge = document.getElementById('dead-badge');
  badge.textContent = num(dead);
  badge.hidden = dead === 0;
  if (app.view && app.view.onCounts) app.view.onCounts(doc);
}

async function refreshStats() {
  setStats(await api('GET', '/api/stats'));
}

/**
 * Coalesce re-reads: `fire()` runs `fn` at most once per `gap` ms, and once more after a run
 * if anything fired meanwhile, so a busy queue does not turn events into a request storm.
 */
function throttle(fn, gap, waitFirst = false) {
  let running = false;
  let again = false;
  let last = waitFirst ? Date.now() : 0;
  let timer = null;
  const run = async () => {
    timer = null;
    running = true;
    again = false;
    last = Date.now();
    try {
      await fn();
    } catch (e) {
      fail(e);
    } finally {
      running = false;
      if (again) fire();
    }
  };
  const fire = () => {
    if (running) {
      again = true;
      return;
    }
    if (timer) return;
    timer = setTimeout(run, Math.max(0, last + gap - Date.now()));
  };
  fire.cancel = () => {
    clearTimeout(timer);
    timer = null;
    again = false;
  };
  return fire;
}

// ---------------------------------------------------------------------------------------------
// Views. Each has `root` (its element), `load()`, and optionally `reload()`, `onCounts(stats)`,
// `onJobs(events, dropped)` and `leave()`.

class View {
  constructor(title) {
    this.title = title;
    this.root = h('section', { class: 'view' });
    this.gone = false;
  }

  leave() {
    this.gone = true;
    for (const t of this.timers || []) t.cancel();
  }

  throttled(fn, gap, waitFirst = false) {
    const t = throttle(async () => {
      if (!this.gone) await fn();
    }, gap, waitFirst);
    (this.timers ||= []).push(t);
    return t;
  }

  failed(e) {
    fill(this.root,
      h('h1', {}, this.title),
      h('p', { class: 'state-dead', id: 'view-error' }, e.message || String(e)),
    );
  }

  reload() {
    return this.load();
  }
}

class NotFound extends View {
  constructor(path) {
    super('Not found');
    this.path = path;
  }

  async load() {
    fill(this.root, h('h1', {}, 'Not found'),
      h('p', {}, `There is no page at ${this.path}. `, h('a', { href: '#/' }, 'Go to the overview.')));
  }
}

// --- Overview --------------------------------------------------------------------------------

class Overview extends View {
  constructor() {
    super('Overview');
    this.cards = h('div', { class: 'cards', id: 'totals' });
    this.queues = h('div', { class: 'scroll', id: 'queues' });
    this.charts = h('div', { class: 'charts', id: 'charts' });
    this.failures = h('div', { class: 'scroll', id: 'failures' });
    this.root.append(h('h1', {}, 'Overview'), this.cards, h('h2', {}, 'Queues'), this.queues,
      h('h2', {}, 'Last hour'), this.charts, h('h2', {}, 'Last failures'), this.failures);
    this.nodes = null;
    this.refreshFailures = this.throttled(() => this.loadFailures(), 1000);
    // History has no event of its own: re-read it when counts move, at most twice a minute.
    this.refreshSlow = this.throttled(() => Promise.all([this.loadHistory(), this.loadNodes()]), 30000, true);
  }

  async load() {
    // The counts are the page; a section that cannot be read says so in its place.
    const section = (el, promise) => promise.catch((e) => fill(el, h('p', { class: 'state-dead' }, e.message)));
    const [stats] = await Promise.all([api('GET', '/api/stats'),
      section(this.charts, this.loadHistory()), section(this.cards, this.loadNodes())]);
    setStats(stats);
    await section(this.failures, this.loadFailures());
  }

  onCounts(stats) {
    this.drawQueues(stats.queues || []);
    this.refreshSlow();
  }

  onJobs(events, dropped) {
    if (dropped || events.some((e) => e.state === 'dead' || e.state === 'deleted')) this.refreshFailures();
  }

  async loadNodes() {
    const doc = await api('GET', '/api/nodes');
    this.nodes = doc.nodes || [];
    if (app.stats) this.drawQueues(app.stats.queues || []);
  }

  drawQueues(queues) {
    const totals = Object.fromEntries(STATES.map((s) => [s, 0]));
    for (const q of queues) for (const s of STATES) totals[s] += q.states[s] || 0;
    const card = (n, label, link) => h('a', { class: 'card', href: link || null, dataset: { total: label } },
      h('div', { class: 'n' }, num(n)), h('div', { class: 'l' }, label));
    fill(this.cards,
      card(this.nodes ? this.nodes.length : null, 'nodes up', '#/nodes'),
      ...STATES.map((s) => card(totals[s], s, s === 'dead' ? '#/dead' : null)),
    );
    const head = h('tr', {}, h('th', {}, 'queue'), STATES.map((s) => h('th', { class: 'num' }, s)),
      h('th', { class: 'num hide-narrow' }, 'processed'), h('th', { class: 'num hide-narrow' }, 'failed'),
      h('th', { class: 'hide-narrow' }, 'limits'));
    const rows = queues.map((q) => h('tr', { dataset: { queue: q.queue } },
      h('td', {}, h('a', { href: href(`/queues/${enc(q.queue)}`) }, q.queue), ' ',
        q.paused ? h('span', { class: 'tag paused' }, 'paused') : null),
      STATES.map((s) => h('td', { class: 'num', dataset: { state: s } },
        h('a', { href: href(`/queues/${enc(q.queue)}`, { state: s }) }, num(q.states[s])))),
      h('td', { class: 'num hide-narrow' }, num(q.processed)),
      h('td', { class: 'num hide-narrow' }, num(q.failed)),
      h('td', { class: 'hide-narrow' }, limitsText(q.limits))));
    if (!rows.length) rows.push(h('tr', {}, h('td', { class: 'empty', colspan: 11 }, 'No queues yet: enqueue a job.')));
    fill(this.queues, h('table', {}, h('thead', {}, head), h('tbody', {}, rows)));
  }

  async loadHistory() {
    const doc = await api('GET', '/api/history');
    const points = doc.points || [];
    fill(this.charts,
      chart('processed per minute', points, 'processed', doc.step_s),
      chart('failed per minute', points, 'failed', doc.step_s),
    );
  }

  async loadFailures() {
    const queues = ((app.stats && app.stats.queues) || [])
      .filter((q) => q.states.dead > 0)
      .sort((a, b) => b.states.dead - a.states.dead)
      .slice(0, 8);
    const pages = await Promise.all(queues.map((q) =>
      api('GET', `/api/queues/${enc(q.queue)}/jobs${query({ state: 'dead', limit: 10 })}`)));
    const jobs = pages.flatMap((p) => p.jobs || [])
      .sort((a, b) => (b.finished_at || '').localeCompare(a.finished_at || ''))
      .slice(0, 10);
    fill(this.failures, jobTable(jobs, 'dead', { showQueue: true, actions: false }));
  }
}

function limitsText(limits) {
  if (!limits) return '';
  const parts = [];
  if (limits.concurrency !== null && limits.concurrency !== undefined) parts.push(`≤ ${limits.concurrency} at once`);
  if (limits.rate) parts.push(`${limits.rate.jobs} per ${durationText(limits.rate.per_ms)}`);
  return parts.join(', ') || 'none';
}

function durationText(ms) {
  if (ms % 86400000 === 0) return `${ms / 86400000}d`;
  if (ms % 3600000 === 0) return `${ms / 3600000}h`;
  if (ms % 60000 === 0) return `${ms / 60000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** A bar chart of one history field, as inline SVG. */
function chart(label, points, field, stepS) {
  const W = 600;
  const H = 140;
  const pad = { l: 34, r: 6, t: 8, b: 18 };
  const max = Math.max(1, ...points.map((p) => p[field] || 0));
  const total = points.reduce((n, p) => n + (p[field] || 0), 0);
  const el = svg('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': label });
  const iw = W - pad.l - pad.r;
  const ih = H - pad.t - pad.b;
  el.append(svg('line', { class: 'axis', x1: pad.l, y1: pad.t + ih, x2: W - pad.r, y2: pad.t + ih }));
  const top = svg('text', { x: pad.l - 4, y: pad.t + 8, 'text-anchor': 'end' });
  top.textContent = num(max);
  const zero = svg('text', { x: pad.l - 4, y: pad.t + ih, 'text-anchor': 'end' });
  zero.textContent = '0';
  el.append(top, zero);
  const bw = points.length ? iw / points.length : iw;
  points.forEach((p, i) => {
    const v = p[field] || 0;
    const bh = (v / max) * ih;
    const bar = svg('rect', {
      class: `bar-${field}`, x: pad.l + i * bw + 0.5, y: pad.t + ih - bh,
      width: Math.max(1, bw - 1), height: bh,
    });
    const tip = svg('title', {});
    tip.textContent = `${p.at}: ${num(v)} ${field}`;
    bar.append(tip);
    el.append(bar);
  });
  if (points.length) {
    const first = svg('text', { x: pad.l, y: H - 4 });
    first.textContent = new Date(points[0].at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    const last = svg('text', { x: W - pad.r, y: H - 4, 'text-anchor': 'end' });
    last.textContent = new Date(points[points.length - 1].at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    el.append(first, last);
  }
  const step = stepS && stepS !== 60 ? ` (per ${durationText(stepS * 1000)})` : '';
  return h('div', { class: 'chart', dataset: { chart: field } },
    h('div', { class: 'head' }, h('span', {}, label + step), h('span', { class: 'muted' }, `total ${num(total)}`)),
    el);
}

// --- Job lists (queue page, dead page) -------------------------------------------------------

/** The time that orders a list in this state (see docs/api.md). */
function listTime(job, state) {
  if (WAITING.includes(state)) return job.due_at;
  if (state === 'active') return job.started_at;
  return job.finished_at;
}

function jobTable(jobs, state, opts = {}) {
  const timeLabel = WAITING.includes(state) ? 'due' : state === 'active' ? 'started' : 'finished';
  const showError = ['dead', 'retry', 'cancelled'].includes(state);
  const head = h('tr', {}, h('th', {}, 'job'), opts.showQueue ? h('th', {}, 'queue') : null,
    h('th', {}, 'kind'), h('th', { class: 'hide-narrow' }, 'payload'), h('th', { class: 'num' }, 'attempt'),
    h('th', {}, timeLabel), showError ? h('th', {}, 'error') : null,
    opts.actions ? h('th', {}, '') : null);
  const rows = jobs.map((job) => h('tr', { dataset: { jobId: job.id, state: job.state } },
    h('td', { class: 'mono' }, h('a', { href: href(`/jobs/${enc(job.id)}`) }, excerpt(job.id, 64))),
    opts.showQueue ? h('td', {}, h('a', { href: href(`/queues/${enc(job.queue)}`, { state: job.state }) }, job.queue)) : null,
    h('td', {}, job.kind),
    h('td', { class: 'mono clip hide-narrow', title: excerpt(job.payload, 2000) }, excerpt(job.payload)),
    h('td', { class: 'num' }, `${job.attempt}/${job.max_attempts}`),
    h('td', {}, when(listTime(job, state))),
    showError ? h('td', { class: 'clip', title: job.last_error || '' }, excerpt(job.last_error || '', 80)) : null,
    opts.actions ? h('td', {}, jobButtons(job, opts.after, true)) : null));
  if (!rows.length) {
    rows.push(h('tr', {}, h('td', { class: 'empty', colspan: 8 }, opts.empty || `No ${state} jobs.`)));
  }
  return h('table', { class: 'jobs' }, h('thead', {}, head), h('tbody', {}, rows));
}

/** The action buttons a job's state allows; none for a read-only caller. */
function jobButtons(job, after, compact = false) {
  if (!canAct()) return null;
  const names = compact && job.state !== 'dead' ? ['retry', 'cancel'] : ['retry', 'kill', 'cancel', 'delete'];
  const buttons = names.filter((a) => ACTIONS[a].includes(job.state)).map((action) => {
    const b = h('button', {
      type: 'button', class: DESTRUCTIVE.has(action) ? 'danger' : null, dataset: { action },
      onclick: () => act(b, async () => {
        if (DESTRUCTIVE.has(action) && !(await ask(
          `${action[0].toUpperCase()}${action.slice(1)} job ${job.id} (${job.state}, queue ${job.queue})? This touches 1 job.`,
          action))) return;
        const res = action === 'delete'
          ? await api('DELETE', `/api/jobs/${enc(job.id)}`)
          : await api('POST', `/api/jobs/${enc(job.id)}/${action}`);
        say(`Job ${job.id}: ${res.previous_state} → ${res.outcome || res.state}`);
        if (after) await after(action, res);
      }),
    }, action);
    return b;
  });
  return buttons.length ? h('span', { class: 'actions' }, buttons) : null;
}

/**
 * A list of one queue's jobs in one state, with filters in the URL (`q`, `kind`, `error`,
 * `cursor`), cursor paging, bulk actions, and live refresh. Shared by the queue and dead pages.
 */
class JobList {
  constructor(view, queue, state, params, basePath, baseParams = {}) {
    this.view = view;
    this.queue = queue;
    this.state = state;
    this.params = params;
    this.basePath = basePath;
    this.baseParams = baseParams;
    this.filters = { q: params.q || '', kind: params.kind || '', error: params.error || '' };
    this.cursor = params.cursor || '';
    this.shown = new Set();
    this.root = h('div', { class: 'joblist' });
    this.table = h('div', { class: 'scroll', id: 'jobs' });
    this.pager = h('div', { class: 'pager', id: 'pager' });
    this.bulk = h('div', { class: 'row', id: 'bulk' });
    this.root.append(this.filterForm(), this.bulk, this.table, this.pager);
    // A filtered list may take many requests to fill: re-read it live less often.
    this.refresh = view.throttled(() => this.load(), this.filtered() ? 5000 : 1000);
    this.drawBulk();
  }

  url(extra) {
    return href(this.basePath, { ...this.baseParams, state: this.stateParam(), ...this.filters, ...extra });
  }

  stateParam() {
    return this.baseParams.state === undefined && this.basePath.startsWith('/dead') ? undefined : this.state;
  }

  filterForm() {
    const field = (name, label, placeholder) => h('label', {}, label,
      h('input', { name, type: 'search', value: this.filters[name], placeholder, size: 18 }));
    const form = h('form', {
      class: 'row', id: 'filters', role: 'search',
      onsubmit: (ev) => {
        ev.preventDefault();
        const data = new FormData(form);
        const next = {};
        for (const k of ['q', 'kind', 'error']) next[k] = String(data.get(k) || '').trim();
        go(href(this.basePath, { ...this.baseParams, state: this.stateParam(), ...next }).slice(1));
      },
    },
    field('q', 'payload contains', 'text in the payload'),
    field('kind', 'kind', 'exact kind'),
    field('error', 'error contains', 'text in the error'),
    h('button', { type: 'submit', class: 'primary' }, 'Search'),
    this.filtered() ? h('a', { href: href(this.basePath, { ...this.baseParams, state: this.stateParam() }) }, 'clear') : null);
    return form;
  }

  filtered() {
    return Boolean(this.filters.q || this.filters.kind || this.filters.error);
  }

  /** The filters as the API takes them, for both the list and bulk actions. */
  apiFilters() {
    const f = {};
    for (const k of ['q', 'kind', 'error']) if (this.filters[k]) f[k] = this.filters[k];
    return f;
  }

  async load() {
    const jobs = [];
    let cursor = this.cursor;
    let next = null;
    let scanned = 0;
    let requests = 0;
    // With filters a page may hold fewer jobs than asked; follow the cursor to fill it.
    do {
      const page = await api('GET', `/api/queues/${enc(this.queue)}/jobs${query({
        state: this.state, ...this.apiFilters(), cursor, limit: PAGE - jobs.length,
      })}`);
      jobs.push(...(page.jobs || []));
      scanned += page.scanned || 0;
      next = page.next_cursor;
      cursor = next;
      requests += 1;
    } while (next && jobs.length < PAGE && requests < SEARCH_REQUESTS && !this.view.gone);
    if (this.view.gone) return;
    this.shown = new Set(jobs.map((j) => j.id));
    const empty = this.filtered() ? `No ${this.state} job matches${next ? ' yet (search further)' : ''}.` : `No ${this.state} jobs.`;
    fill(this.table, jobTable(jobs, this.state, {
      actions: canAct(), empty, after: () => this.refresh(),
    }));
    this.drawPager(jobs.length, next, scanned);
  }

  drawPager(count, next, scanned) {
    const parts = [];
    if (this.cursor) parts.push(h('a', { href: this.url({ cursor: undefined }), id: 'first-page' }, '« first page'));
    parts.push(h('span', { class: 'muted', id: 'page-count' },
      `${num(count)} job${count === 1 ? '' : 's'} shown`,
      this.filtered() && scanned ? `, ${num(scanned)} examined` : ''));
    if (next) {
      parts.push(h('a', { href: this.url({ cursor: next }), id: 'next-page' },
        count < PAGE && this.filtered() ? 'search further »' : 'next page »'));
    }
    fill(this.pager, ...parts);
  }

  drawBulk() {
    if (!canAct()) return fill(this.bulk);
    const actions = ['retry', 'kill', 'cancel', 'delete'].filter((a) => ACTIONS[a].includes(this.state));
    const what = this.filtered() ? 'all matching' : `all ${this.state}`;
    fill(this.bulk, h('span', { class: 'muted' }, 'Bulk:'), actions.map((action) => {
      const b = h('button', {
        type: 'button', class: DESTRUCTIVE.has(action) ? 'danger' : null, dataset: { bulk: action },
        onclick: () => act(b, () => this.bulkAction(action)),
      }, `${action} ${what}`);
      return b;
    }));
  }

  async bulkAction(action) {
    const body = { action, state: this.state, ...this.apiFilters() };
    const dry = await api('POST', `/api/queues/${enc(this.queue)}/bulk`, { ...body, dry_run: true });
    if (!dry.matched) {
      say(`No ${this.state} job in ${this.queue} matches: nothing to ${action}.`);
      return;
    }
    const filters = Object.entries(this.apiFilters()).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ');
    const ok = await ask(
      `${action[0].toUpperCase()}${action.slice(1)} ${num(dry.matched)} ${this.state} job${dry.matched === 1 ? '' : 's'} `
      + `in queue ${this.queue}${filters ? ` matching ${filters}` : ''}?`,
      `${action} ${num(dry.matched)}`);
    if (!ok) return;
    const res = await api('POST', `/api/queues/${enc(this.queue)}/bulk`, body);
    say(`${DONE[action]} ${num(res.acted)} of ${num(res.matched)} matching jobs` +
      (res.acted < res.matched ? ' (the others had moved on meanwhile)' : ''));
    await this.load();
  }

  onJobs(events, dropped) {
    if (dropped) return this.refresh();
    if (events.some((e) => e.queue === this.queue && e.state !== 'progress'
      && (e.state === this.state || this.shown.has(e.id)))) this.refresh();
  }
}

// --- Queue page ------------------------------------------------------------------------------

class QueuePage extends View {
  constructor(queue, params) {
    super(queue);
    this.queue = queue;
    this.state = STATES.includes(params.state) ? params.state : 'pending';
    this.head = h('h1', {}, 'Queue ', h('span', { class: 'mono' }, queue));
    // The counts and the pause button are redrawn on every refresh (`status`); the limits form
    // stays in place, so that a refresh never takes the focus or the keys from someone typing.
    this.status = h('span', { style: 'display: contents' });
    this.controls = h('div', { class: 'row', id: 'queue-controls' }, this.status);
    this.tabs = h('nav', { class: 'tabs', id: 'states', 'aria-label': 'states' });
    this.list = new JobList(this, queue, this.state, params, `/queues/${enc(queue)}`);
    this.charts = h('div', { class: 'charts', id: 'queue-charts' });
    // Filled only for a sharded queue: one row per physical queue.
    this.shards = h('div', { id: 'shards' });
    this.root.append(this.head, this.controls, this.tabs, this.list.root, this.shards,
      h('h2', {}, 'Last hour'), this.charts);
    this.limitsForm = null;
    // Like the overview's: re-read the history when counts move, at most twice a minute.
    this.refreshHistory = this.throttled(() => this.loadHistory(), 30000, true);
    this.refreshShards = this.throttled(() => this.loadShards(), 2000, true);
  }

  async load() {
    if (!app.stats) await refreshStats();
    this.draw(this.counts());
    await Promise.all([this.list.load(), this.loadHistory().catch((e) => {
      fill(this.charts, h('p', { class: 'state-dead' }, e.message));
    }), this.loadShards().catch((e) => {
      fill(this.shards, h('p', { class: 'state-dead' }, e.message));
    })]);
  }

  async loadShards() {
    const shards = await api('GET', `/api/queues/${enc(this.queue)}/shards`);
    if (shards.length < 2) return fill(this.shards);
    const head = h('tr', {}, h('th', {}, 'shard'), h('th', {}, 'queue'), h('th', { class: 'num' }, 'slot'),
      ['pending', 'scheduled', 'retry', 'active'].map((s) => h('th', { class: 'num' }, s)),
      h('th', { class: 'num' }, 'processed'));
    const rows = shards.map((p) => h('tr', { dataset: { shard: p.shard === null ? 'base' : String(p.shard) } },
      h('td', {}, p.shard === null ? 'base' : String(p.shard)),
      h('td', { class: 'mono' }, p.counts.queue),
      h('td', { class: 'num' }, String(p.slot)),
      ['pending', 'scheduled', 'retry', 'active'].map((s) => h('td', { class: 'num', dataset: { state: s } },
        num(p.counts.states[s] || 0))),
      h('td', { class: 'num' }, num(p.counts.processed))));
    fill(this.shards, h('h2', {}, `Shards (${shards.length - 1})`),
      h('table', {}, h('thead', {}, head), h('tbody', {}, rows)));
  }

  async loadHistory() {
    const doc = await api('GET', `/api/history${query({ queue: this.queue })}`);
    const points = doc.points || [];
    fill(this.charts, chart('processed per minute', points, 'processed', doc.step_s),
      chart('failed per minute', points, 'failed', doc.step_s));
  }

  counts() {
    return ((app.stats && app.stats.queues) || []).find((q) => q.queue === this.queue) || null;
  }

  onCounts() {
    this.draw(this.counts());
    this.refreshHistory();
    this.refreshShards();
  }

  onJobs(events, dropped) {
    this.list.onJobs(events, dropped);
  }

  draw(q) {
    const states = (q && q.states) || {};
    fill(this.tabs, ...STATES.map((s) => h('a', {
      href: href(`/queues/${enc(this.queue)}`, { state: s, ...this.list.apiFilters() }),
      class: s === this.state ? 'current' : null, dataset: { state: s },
    }, `${s} `, h('span', { class: 'count' }, num(states[s] || 0)))));
    const paused = Boolean(q && q.paused);
    fill(this.head, 'Queue ', h('span', { class: 'mono' }, this.queue),
      paused ? h('span', { class: 'tag paused', id: 'paused' }, 'paused') : null);
    const parts = [
      h('span', { class: 'muted' }, `processed ${num(q && q.processed)}, failed ${num(q && q.failed)}; limits: `),
      h('span', { id: 'limits' }, limitsText(q && q.limits)),
    ];
    if (canAct()) {
      const toggle = h('button', {
        type: 'button', id: paused ? 'resume' : 'pause', class: paused ? 'primary' : null,
        onclick: () => act(toggle, async () => {
          const res = await api('POST', `/api/queues/${enc(this.queue)}/${paused ? 'resume' : 'pause'}`);
          say(`Queue ${this.queue} ${res.paused ? 'paused: no new job starts' : 'resumed'}.`);
          await refreshStats();
        }),
      }, paused ? 'Resume' : 'Pause');
      parts.unshift(toggle);
      if (!this.limitsForm) {
        this.limitsForm = this.makeLimitsForm(q && q.limits);
        this.controls.append(this.limitsForm);
      }
    }
    fill(this.status, ...parts);
  }

  makeLimitsForm(limits) {
    const conc = h('input', {
      name: 'concurrency', size: 5, placeholder: 'none', inputmode: 'numeric',
      value: limits && limits.concurrency !== null && limits.concurrency !== undefined ? String(limits.concurrency) : '',
    });
    const rate = h('input', {
      name: 'rate', size: 8, placeholder: 'e.g. 50/1s',
      value: limits && limits.rate ? `${limits.rate.jobs}/${durationText(limits.rate.per_ms)}` : '',
    });
    const save = h('button', { type: 'submit' }, 'Set limits');
    const form = h('form', {
      class: 'row', id: 'limits-form',
      onsubmit: (ev) => {
        ev.preventDefault();
        act(save, async () => {
          const c = conc.value.trim();
          const r = rate.value.trim();
          if (c && !/^\d+$/.test(c)) throw new Error('concurrency is a whole number of jobs, or empty for none');
          const res = await api('PUT', `/api/queues/${enc(this.queue)}/limits`, {
            concurrency: c ? Number(c) : null, rate: r || null,
          });
          say(`Queue ${this.queue} limits: ${limitsText(res.limits)}.`);
          await refreshStats();
        });
      },
    }, h('label', {}, 'at once', conc), h('label', {}, 'rate', rate), save);
    return form;
  }
}

// --- Dead page -------------------------------------------------------------------------------

class DeadPage extends View {
  constructor(params) {
    super('Dead jobs');
    this.params = params;
    this.explicit = params.queue || null;
    this.picker = h('div', { class: 'row', id: 'dead-queues' });
    this.body = h('div', {});
    this.root.append(h('h1', {}, 'Dead jobs'), this.picker, this.body);
    this.list = null;
  }

  async load() {
    if (!app.stats) await refreshStats();
    await this.pick();
  }

  /** The queue shown: the one in the URL, else the one with the most dead jobs. */
  chosen() {
    if (this.explicit) return this.explicit;
    const queues = ((app.stats && app.stats.queues) || []).filter((q) => q.states.dead > 0);
    queues.sort((a, b) => b.states.dead - a.states.dead);
    return queues.length ? queues[0].queue : null;
  }

  async pick() {
    const queue = this.chosen();
    this.drawPicker(queue);
    if (!queue) {
      this.list = null;
      fill(this.body, h('p', { class: 'muted', id: 'no-dead' }, 'No dead jobs in any queue.'));
      return;
    }
    if (!this.list || this.list.queue !== queue) {
      this.list = new JobList(this, queue, 'dead', this.params, '/dead', { queue: this.explicit || undefined });
      fill(this.body, this.list.root);
    }
    await this.list.load();
  }

  drawPicker(current) {
    const queues = ((app.stats && app.stats.queues) || []).filter((q) => q.states.dead > 0 || q.queue === current);
    fill(this.picker, h('span', { class: 'muted' }, 'queue:'), ...queues.map((q) => h('a', {
      href: href('/dead', { queue: q.queue }), class: `tag${q.queue === current ? ' state-dead' : ''}`,
      dataset: { queue: q.queue },
    }, `${q.queue} `, h('span', { class: 'count' }, num(q.states.dead)))));
  }

  onCounts() {
    const queue = this.chosen();
    if (!this.list || this.list.queue !== queue) this.pick().catch(fail);
    else this.drawPicker(queue);
  }

  onJobs(events, dropped) {
    if (this.list) this.list.onJobs(events, dropped);
  }
}

// --- Job page --------------------------------------------------------------------------------

class JobPage extends View {
  constructor(id) {
    super(`Job ${id}`);
    this.id = id;
    this.job = null;
    this.refresh = this.throttled(() => this.load(), 500);
  }

  async load() {
    try {
      this.job = await api('GET', `/api/jobs/${enc(this.id)}`);
    } catch (e) {
      if (e.status !== 404) throw e;
      this.drawGone('No such job: it was deleted, or its retention ran out.');
      return;
    }
    if (!this.gone) this.draw();
  }

  drawGone(why) {
    this.job = null;
    this.refresh.cancel();
    fill(this.root, h('h1', {}, 'Job ', h('span', { class: 'mono' }, this.id)), h('p', { id: 'job-gone' }, why));
  }

  onJobs(events, dropped) {
    const mine = events.filter((e) => e.id === this.id);
    if (!mine.length && !dropped) return;
    const last = mine[mine.length - 1];
    if (last && last.state === 'deleted') return this.drawGone('This job was deleted.');
    // Gone: only an event of this id (a new job under the same id) is worth a read.
    if (!this.job && !mine.length) return;
    if (last && last.state === 'progress' && last.progress && this.job
      && mine.every((e) => e.state === 'progress')) {
      this.job.progress = last.progress;
      this.drawProgress();
      return;
    }
    this.refresh();
  }

  draw() {
    const j = this.job;
    const field = (label, ...value) => [h('dt', {}, label), h('dd', { dataset: { field: label } }, ...value)];
    const ms = (v) => (v === null || v === undefined ? '–' : durationText(v));
    this.progress = h('span', { id: 'progress' });
    fill(this.root,
      h('h1', {}, 'Job ', h('span', { class: 'mono', id: 'job-id' }, j.id), h('span', { id: 'job-state' }, stateTag(j.state)),
        j.cancel_requested ? h('span', { class: 'tag warn' }, 'cancel requested') : null),
      h('div', { class: 'row', id: 'job-actions' }, jobButtons(j, (action) => (action === 'delete'
        ? this.drawGone('This job was deleted.') : this.load()))),
      h('dl', { class: 'fields' },
        field('queue', h('a', { href: href(`/queues/${enc(j.queue)}`, { state: j.state }) }, j.queue)),
        field('kind', j.kind || h('span', { class: 'muted' }, 'unknown')),
        field('attempts', `${j.attempt} of ${j.max_attempts}`),
        field('priority', String(j.priority)),
        field('fence', String(j.fence)),
        field('timeout', ms(j.timeout_ms)),
        field('worker', j.worker ? h('a', { href: '#/nodes' }, j.worker) : '–'),
        field('progress', this.progress),
        field('created', when(j.created_at)),
        field('due', when(j.due_at)),
        field('started', when(j.started_at)),
        field('finished', when(j.finished_at)),
        field('lease until', when(j.lease_until)),
        Object.keys(j.meta || {}).length ? field('meta', h('code', {}, JSON.stringify(j.meta))) : null,
        j.corrupt ? field('corrupt', h('span', { class: 'state-dead' }, j.corrupt)) : null),
      h('h2', {}, 'Payload'), h('pre', { id: 'payload' }, JSON.stringify(j.payload, null, 2)),
      j.last_error ? [h('h2', {}, 'Last error'), h('pre', { id: 'error', class: 'state-dead' }, j.last_error)] : null,
      j.result !== null && j.result !== undefined
        ? [h('h2', {}, 'Result'), h('pre', { id: 'result' }, typeof j.result === 'string' ? j.result : JSON.stringify(j.result, null, 2))]
        : null,
    );
    this.drawProgress();
  }

  drawProgress() {
    const p = this.job && this.job.progress;
    if (!this.progress) return;
    if (!p) return fill(this.progress, '–');
    const value = typeof p.value === 'number' ? p.value : null;
    fill(this.progress,
      value !== null ? h('progress', { max: 1, value }) : null,
      value !== null ? ` ${Math.round(value * 100)}% ` : '',
      p.message ? h('span', { class: 'muted' }, p.message) : '');
  }
}

// --- Schedules -------------------------------------------------------------------------------

class Schedules extends View {
  constructor() {
    super('Schedules');
    this.table = h('div', { class: 'scroll', id: 'schedules' });
    this.root.append(h('h1', {}, 'Schedules'), this.table);
    this.refresh = this.throttled(() => this.load(), 1000);
  }

  async load() {
    const doc = await api('GET', '/api/schedules');
    if (!this.gone) this.draw(doc.schedules || []);
  }

  onJobs(events, dropped) {
    // A schedule's jobs have ids `cron:<name>:...`: they move when it fires.
    if (dropped || events.some((e) => e.id.startsWith('cron:'))) this.refresh();
  }

  draw(list) {
    const head = h('tr', {}, ['name', 'schedule', 'queue', 'next fire (its zone)', 'last fired', 'fired', 'skipped', 'policy', '']
      .map((t, i) => h('th', { class: i === 5 || i === 6 ? 'num' : i === 7 ? 'hide-narrow' : null }, t)));
    const rows = list.map((s) => h('tr', { dataset: { schedule: s.name } },
      h('td', {}, h('strong', {}, s.name), s.paused ? [' ', h('span', { class: 'tag paused' }, 'paused')] : null),
      h('td', { class: 'mono' }, s.schedule, h('div', { class: 'muted' }, s.timezone)),
      h('td', {}, h('a', { href: href(`/queues/${enc(s.queue)}`) }, s.queue)),
      h('td', {}, s.next_at ? [h('span', { class: 'mono', title: s.next_at_utc || '' }, s.next_at), h('div', { class: 'muted' }, when(s.next_at_utc))] : '–'),
      h('td', {}, when(s.last_fired_at)),
      h('td', { class: 'num' }, num(s.fired)),
      h('td', { class: 'num' }, num(s.skipped)),
      h('td', { class: 'hide-narrow muted' }, `overlap ${s.overlap}, catch-up ${s.catchup}, ${(s.tasks || []).length} task(s)`),
      h('td', {}, this.buttons(s))));
    if (!rows.length) rows.push(h('tr', {}, h('td', { class: 'empty', colspan: 9 }, 'No schedules. Add one with `tickq cron add` or [[cron]] in the config.')));
    fill(this.table, h('table', {}, h('thead', {}, head), h('tbody', {}, rows)));
  }

  buttons(s) {
    if (!canAct()) return null;
    const mk = (action, label, cls) => {
      const b = h('button', {
        type: 'button', class: cls || null, dataset: { action },
        onclick: () => act(b, async () => {
          const res = await api('POST', `/api/schedules/${enc(s.name)}/${action}`);
          if (action === 'trigger') say(`Schedule ${s.name}: enqueued ${(res.jobs || []).length} job(s).`);
          else say(`Schedule ${s.name} ${res.paused ? 'paused' : 'resumed'}.`);
          await this.load();
        }),
      }, label);
      return b;
    };
    return h('span', { class: 'actions' }, mk('trigger', 'Trigger now'),
      s.paused ? mk('resume', 'Resume', 'primary') : mk('pause', 'Pause'));
  }
}

// --- Nodes -----------------------------------------------------------------------------------

class Nodes extends View {
  constructor() {
    super('Nodes');
    this.list = h('div', { class: 'nodes', id: 'nodes' });
    this.root.append(h('h1', {}, 'Nodes'), this.list);
    // What a node runs changes with job events; nodes joining or leaving have no event, so
    // counts (which move whenever anything runs) also trigger a slower re-read.
    this.refresh = this.throttled(() => this.load(), 1000);
    this.slow = this.throttled(() => this.load(), 15000, true);
  }

  async load() {
    const doc = await api('GET', '/api/nodes');
    if (this.gone) return;
    const nodes = doc.nodes || [];
    // A node rewrites its record once a beat (a third of its expiry).
    const beats = nodes.map((n) => (Date.parse(n.expires_at) - Date.parse(n.last_seen_at)) / 3)
      .filter((ms) => ms > 0);
    this.beat = beats.length ? Math.min(...beats) : 5000;
    this.draw(nodes);
  }

  onJobs(events, dropped) {
    if (!dropped && !events.some((e) => e.state !== 'progress')) return;
    this.refresh();
    // What a node runs reaches its record at its next beat, after the job event: read once
    // more then (once per burst of events; there is no node event in the stream).
    clearTimeout(this.beatTimer);
    this.beatTimer = setTimeout(() => this.refresh(), (this.beat || 5000) + 500);
  }

  leave() {
    super.leave();
    clearTimeout(this.beatTimer);
  }

  onCounts() {
    this.slow();
  }

  draw(nodes) {
    if (!nodes.length) {
      fill(this.list, h('p', { class: 'muted', id: 'no-nodes' }, 'No node is up: start one with `tickq server`.'));
      return;
    }
    fill(this.list, ...nodes.map((n) => h('div', { class: 'card', dataset: { node: n.id } },
      h('h2', { style: 'margin-top:0' }, n.name, ' ', h('span', { class: 'muted mono' }, n.id)),
      h('dl', { class: 'fields' },
        h('dt', {}, 'version'), h('dd', {}, n.version),
        h('dt', {}, 'host, pid'), h('dd', {}, `${n.host}, ${n.pid}`),
        h('dt', {}, 'queues'), h('dd', {}, (n.queues || []).map((q) => `${q.queue}=${q.weight}`).join(', ')),
        h('dt', {}, 'running'), h('dd', {}, `${(n.running || []).length} of ${n.concurrency}`),
        h('dt', {}, 'started'), h('dd', {}, when(n.started_at)),
        h('dt', {}, 'last seen'), h('dd', {}, when(n.last_seen_at))),
      (n.running || []).length
        ? h('ul', { class: 'running' }, n.running.map((r) => h('li', {},
          h('a', { class: 'mono', href: href(`/jobs/${enc(r.id)}`) }, excerpt(r.id, 36)),
          ` in ${r.queue}, fence ${r.fence}`)))
        : h('p', { class: 'muted' }, 'idle'))));
  }
}

// --- Locks -----------------------------------------------------------------------------------

class Locks extends View {
  constructor() {
    super('Locks');
    const again = h('button', { type: 'button', id: 'refresh', onclick: () => act(again, () => this.load()) }, 'Refresh');
    this.table = h('div', { class: 'scroll', id: 'locks' });
    // Locks have no event in the stream, so this page reads them when asked.
    this.root.append(h('h1', {}, 'Locks ', again), this.table);
  }

  async load() {
    const doc = await api('GET', '/api/locks');
    if (this.gone) return;
    const rows = (doc.locks || []).map((l) => h('tr', { dataset: { lock: l.name } },
      h('td', { class: 'mono' }, l.name), h('td', { class: 'num' }, String(l.fence)),
      h('td', {}, when(l.expires_at))));
    if (!rows.length) rows.push(h('tr', {}, h('td', { class: 'empty', colspan: 3 }, 'No lock is held.')));
    fill(this.table, h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'name'), h('th', { class: 'num' }, 'fence'), h('th', {}, 'expires'))),
      h('tbody', {}, rows)));
  }
}

// --- Workflows ---------------------------------------------------------------------------------

/** The workflow a job event is about: its ids are `flow:<workflow id>:<step id>`. */
function flowOf(jobId) {
  if (!jobId || !jobId.startsWith('flow:')) return null;
  const rest = jobId.slice(5);
  const cut = rest.lastIndexOf(':');
  return cut > 0 ? rest.slice(0, cut) : null;
}

class Flows extends View {
  constructor() {
    super('Workflows');
    this.table = h('div', { class: 'scroll', id: 'flows' });
    this.root.append(h('h1', {}, 'Workflows'), this.table);
    this.refresh = this.throttled(() => this.load(), 1000, true);
  }

  async load() {
    const doc = await api('GET', '/api/flows?limit=200');
    if (this.gone) return;
    const rows = (doc.flows || []).map((f) => h('tr', { dataset: { flow: f.id } },
      h('td', { class: 'mono' }, h('a', { href: `#/flows/${enc(f.id)}` }, f.id)),
      h('td', {}, f.name),
      h('td', { class: 'hide-narrow' }, h('a', { href: `#/queues/${enc(f.queue)}` }, f.queue)),
      h('td', {}, stateTag(f.state)),
      h('td', { class: 'num' }, num(f.steps)),
      h('td', { class: 'hide-narrow muted' }, Object.entries(f.ended || {}).map(([s, n]) => `${n} ${s}`).join(', ')),
      h('td', { class: 'hide-narrow' }, when(f.created_at))));
    if (!rows.length) {
      rows.push(h('tr', {}, h('td', { class: 'empty', colspan: 7, id: 'no-flows' },
        'No workflow is running or kept. Submit one with tickq flow run FILE.')));
    }
    fill(this.table, h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'id'), h('th', {}, 'name'), h('th', { class: 'hide-narrow' }, 'queue'),
        h('th', {}, 'state'), h('th', { class: 'num' }, 'steps'), h('th', { class: 'hide-narrow' }, 'ended'),
        h('th', { class: 'hide-narrow' }, 'created'))),
      h('tbody', {}, rows)));
  }

  onJobs(events, dropped) {
    if (dropped || events.some((e) => flowOf(e.id))) this.refresh();
  }
}

/**
 * Layered layout of a DAG (after Sugiyama): a step's layer is the length of the longest path
 * to it from a step without parents, so every edge goes to a later layer. An edge that spans
 * several layers gets a virtual point in each layer it crosses, which takes a slot like a
 * step, so it never runs behind a box. Within a layer, items are ordered by the mean position
 * of their predecessors (one barycenter sweep), which keeps most edges short and uncrossed.
 * Answers {pos: Map(id -> {x, y}), routes: [{from, to, via: [virtual ids]}], width, height}.
 */
function layoutDag(steps, geometry) {
  const byId = new Map(steps.map((s) => [s.id, s]));
  const layer = new Map();
  const depth = (s, seen = new Set()) => {
    if (layer.has(s.id)) return layer.get(s.id);
    if (seen.has(s.id)) return 0; // a cycle cannot be submitted; never loop on bad data
    seen.add(s.id);
    let d = 0;
    for (const p of s.after || []) {
      const parent = byId.get(p);
      if (parent) d = Math.max(d, depth(parent, seen) + 1);
    }
    layer.set(s.id, d);
    return d;
  };
  steps.forEach((s) => depth(s));
  // Items: the steps, then the virtual points of long edges (ids no step id can take).
  const items = new Map(steps.map((s) => [s.id, { id: s.id, layer: layer.get(s.id), preds: [] }]));
  const routes = [];
  for (const s of steps) {
    for (const p of s.after || []) {
      if (!byId.has(p)) continue;
      const via = [];
      let prev = p;
      for (let l = layer.get(p) + 1; l < layer.get(s.id); l++) {
        const v = `${p} > ${s.id} @${l}`;
        items.set(v, { id: v, layer: l, preds: [prev] });
        via.push(v);
        prev = v;
      }
      items.get(s.id).preds.push(prev);
      routes.push({ from: p, to: s.id, via });
    }
  }
  const layers = [];
  for (const it of items.values()) (layers[it.layer] ||= []).push(it);
  const index = new Map();
  layers.forEach((l, i) => {
    if (i > 0) {
      const mean = (it) => {
        const ps = it.preds.filter((p) => index.has(p)).map((p) => index.get(p));
        return ps.length ? ps.reduce((a, b) => a + b, 0) / ps.length : 0;
      };
      l.sort((a, b) => mean(a) - mean(b));
    }
    l.forEach((it, j) => index.set(it.id, j));
  });
  const { w, h: nh, gapX, gapY } = geometry;
  const tallest = Math.max(...layers.map((l) => l.length));
  const pos = new Map();
  layers.forEach((l, i) => {
    // Each layer centred on the tallest one.
    const top = ((tallest - l.length) * (nh + gapY)) / 2;
    l.forEach((it, j) => pos.set(it.id, { x: i * (w + gapX), y: top + j * (nh + gapY) }));
  });
  return { pos, routes, width: layers.length * (w + gapX) - gapX, height: tallest * (nh + gapY) - gapY };
}

/** The DAG of a workflow as SVG: a box per step (its id and state), an edge per `after`. */
function dagSvg(steps) {
  const g = { w: 180, h: 44, gapX: 64, gapY: 18 };
  const pad = 8;
  const { pos, routes, width, height } = layoutDag(steps, g);
  const root = svg('svg', {
    class: 'dag', id: 'dag', role: 'img', 'aria-label': 'the workflow as a graph',
    width: width + 2 * pad, height: height + 2 * pad,
    viewBox: `${-pad} ${-pad} ${width + 2 * pad} ${height + 2 * pad}`,
  });
  const defs = svg('defs', {});
  const marker = svg('marker', { id: 'dag-arrow', viewBox: '0 0 8 8', refX: 8, refY: 4,
    markerWidth: 7, markerHeight: 7, orient: 'auto' });
  marker.append(svg('path', { d: 'M0,0 L8,4 L0,8 z', class: 'arrow' }));
  defs.append(marker);
  root.append(defs);
  // A curve from each point's right side to the next one's left side; straight through the
  // slot of each virtual point.
  const curve = (x1, y1, x2, y2) => {
    const mid = (x1 + x2) / 2;
    return ` C${mid},${y1} ${mid},${y2} ${x2},${y2}`;
  };
  for (const r of routes) {
    const from = pos.get(r.from);
    let x = from.x + g.w;
    let y = from.y + g.h / 2;
    let d = `M${x},${y}`;
    for (const v of r.via) {
      const p = pos.get(v);
      d += curve(x, y, p.x, p.y + g.h / 2);
      x = p.x + g.w;
      y = p.y + g.h / 2;
      d += ` L${x},${y}`;
    }
    const to = pos.get(r.to);
    d += curve(x, y, to.x, to.y + g.h / 2);
    root.append(svg('path', {
      class: 'edge', d, 'data-from': r.from, 'data-to': r.to, 'marker-end': 'url(#dag-arrow)',
    }));
  }
  for (const s of steps) {
    const { x, y } = pos.get(s.id);
    const link = svg('a', { href: `#/jobs/${enc(s.job_id)}` });
    const node = svg('g', { class: `node state-${s.state}`, 'data-step': s.id, 'data-state': s.state,
      transform: `translate(${x},${y})` });
    const title = svg('title', {});
    title.textContent = `${s.id}: ${s.state}${s.error ? ` (${s.error})` : ''}`;
    const box = svg('rect', { width: g.w, height: g.h, rx: 6 });
    const name = svg('text', { x: 10, y: 18, class: 'name' });
    name.textContent = excerpt(s.id, 22);
    const state = svg('text', { x: 10, y: 35, class: 'state' });
    state.textContent = s.on_parent_failure && s.on_parent_failure !== 'cancel' && (s.after || []).length
      ? `${s.state} · ${s.on_parent_failure}` : s.state;
    node.append(title, box, name, state);
    link.append(node);
    root.append(link);
  }
  return root;
}

class FlowPage extends View {
  constructor(id) {
    super(`Workflow ${id}`);
    this.id = id;
    this.refresh = this.throttled(() => this.load(), 500, true);
  }

  async load() {
    let doc;
    try {
      doc = await api('GET', `/api/flows/${enc(this.id)}`);
    } catch (e) {
      if (this.gone) return;
      if (e.status === 404) {
        fill(this.root, h('h1', {}, 'Workflow ', h('span', { class: 'mono' }, this.id)),
          h('p', { id: 'flow-gone' }, 'No such workflow: it never existed, or it ended longer ago than its retention.'));
        return;
      }
      throw e;
    }
    if (this.gone) return;
    const counts = Object.entries(doc.counts || {}).map(([s, n]) => `${n} ${s}`).join(', ');
    // A column for the steps' queues only when some step is outside the workflow's home.
    const spread = doc.steps.some((s) => s.queue && s.queue !== doc.queue);
    const rows = doc.steps.map((s) => h('tr', { dataset: { step: s.id } },
      h('td', { class: 'mono' }, h('a', { href: `#/jobs/${enc(s.job_id)}` }, s.id)),
      h('td', {}, stateTag(s.state)),
      h('td', { class: 'mono hide-narrow' }, (s.after || []).join(', ')),
      spread ? h('td', { class: 'hide-narrow' }, h('a', { href: `#/queues/${enc(s.queue)}` }, s.queue)) : null,
      h('td', { class: 'hide-narrow' }, s.on_parent_failure),
      h('td', { class: 'clip' }, s.error || (s.result ? excerpt(s.result) : ''))));
    fill(this.root,
      h('h1', {}, 'Workflow ', h('span', { class: 'mono' }, this.id), ' ', this.buttons(doc)),
      h('p', { id: 'flow-summary' }, `${doc.name} · queue `, h('a', { href: `#/queues/${enc(doc.queue)}` }, doc.queue),
        ' · ', h('span', { id: 'flow-state' }, stateTag(doc.state)), ` · ${counts}`,
        doc.created_at ? [' · created ', when(doc.created_at)] : null,
        doc.finished_at ? [' · finished ', when(doc.finished_at)] : null),
      h('div', { class: 'scroll dag-box' }, dagSvg(doc.steps)),
      h('div', { class: 'scroll' }, h('table', { id: 'flow-steps' },
        h('thead', {}, h('tr', {}, h('th', {}, 'step'), h('th', {}, 'state'), h('th', { class: 'hide-narrow' }, 'after'),
          spread ? h('th', { class: 'hide-narrow' }, 'queue') : null, h('th', { class: 'hide-narrow' }, 'if a parent fails'), h('th', {}, 'error / result'))),
        h('tbody', {}, rows))));
  }

  buttons(doc) {
    if (!canAct()) return null;
    const done = ['succeeded', 'failed', 'cancelled'].includes(doc.state);
    const mk = (action, label, question) => {
      const b = h('button', {
        type: 'button', dataset: { action },
        onclick: () => act(b, async () => {
          if (!(await ask(question, label))) return;
          const res = await api('POST', `/api/flows/${enc(this.id)}/${action}`);
          say(action === 'cancel'
            ? `Workflow ${this.id}: ${res.cancelled} step(s) cancelled, ${res.cancelling} running step(s) asked to stop.`
            : `Workflow ${this.id}: ${res.retried} failed step(s) started over.`);
          await this.load();
        }),
      }, label);
      return b;
    };
    return h('span', { class: 'actions' },
      done ? null : mk('cancel', 'Cancel', `Cancel workflow ${this.id}? Running steps are stopped, the others cancelled.`),
      doc.state === 'failed' || doc.state === 'cancelled'
        ? mk('retry', 'Retry', `Start the dead and cancelled steps of workflow ${this.id} over?`) : null);
  }

  onJobs(events, dropped) {
    if (dropped || events.some((e) => flowOf(e.id) === this.id)) this.refresh();
  }
}

// ---------------------------------------------------------------------------------------------
// Login, identity

function showLogin(next) {
  const main = document.getElementById('main');
  document.title = 'Log in · tickq';
  const input = h('input', { type: 'password', name: 'token', id: 'token', autocomplete: 'current-password', required: true });
  const error = h('p', { id: 'login-error', class: 'state-dead', hidden: true });
  const submit = h('button', { type: 'submit', class: 'primary', id: 'login' }, 'Log in');
  const form = h('form', {
    onsubmit: (ev) => {
      ev.preventDefault();
      submit.disabled = true;
      api('POST', '/api/login', { token: input.value })
        .then(() => whoami())
        .then(() => {
          input.value = '';
          connectEvents();
          go(next.startsWith('/') && !next.startsWith('/login') ? next : '/', true);
        })
        .catch((e) => {
          error.textContent = e.status === 401 ? 'Wrong token.' : e.message;
          error.hidden = false;
        })
        .finally(() => { submit.disabled = false; });
    },
  }, h('label', { for: 'token' }, 'Token (the [http] token or read_token of the server)'), input, submit, error);
  fill(main, h('section', { class: 'login' }, h('h1', {}, 'Log in to tickq'), form));
  input.focus();
}

async function whoami() {
  const me = await api('GET', '/api/whoami');
  app.auth = Boolean(me.auth);
  app.role = me.role || null;
  const who = document.getElementById('who');
  fill(who, app.role === 'read' ? h('span', { class: 'tag read', id: 'read-only' }, 'read only') : '');
  document.getElementById('logout').hidden = !(app.auth && app.role);
  document.body.classList.toggle('read-only', !canAct());
  return me;
}

async function logout() {
  await api('POST', '/api/logout');
  disconnectEvents();
  await whoami();
  go('/login', true);
}

// ---------------------------------------------------------------------------------------------
// Start

async function start() {
  document.getElementById('logout').addEventListener('click', () => logout().catch(fail));
  window.addEventListener('hashchange', () => route());
  // Browsers allow six HTTP/1.1 connections per server, and each open event stream holds
  // one: a page being left closes its stream at once, and a tab hidden for a minute closes
  // it too (it reopens, and the page re-reads, when the tab is shown again).
  window.addEventListener('pagehide', () => disconnectEvents());
  window.addEventListener('pageshow', (ev) => {
    if (ev.persisted) resume();
  });
  let hiddenTimer = null;
  document.addEventListener('visibilitychange', () => {
    clearTimeout(hiddenTimer);
    if (document.hidden) hiddenTimer = setTimeout(disconnectEvents, 60000);
    else if (!app.events) resume();
  });
  setInterval(tickClocks, 1000);
  try {
    await whoami();
  } catch (e) {
    fill(document.getElementById('main'), h('h1', {}, 'tickq'),
      h('p', { class: 'state-dead', id: 'view-error' }, `Cannot read /api/whoami: ${e.message}`));
    return;
  }
  if (app.role || !app.auth) connectEvents();
  await route();
}

start();
