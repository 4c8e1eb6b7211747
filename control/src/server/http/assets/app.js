// rustci's dashboard: draws the page its path names from /api/v1/ and keeps it current
// from /api/v1/stream (Server-Sent Events), without reloading. Untrusted text (job
// names, commands, reasons) only ever goes in as textContent.
'use strict';

const main = document.getElementById('main');
const liveBadge = document.getElementById('live');

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined) continue;
    e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return e;
}

async function api(path, opts) {
  const r = await fetch(path, Object.assign({
    credentials: 'same-origin',
    headers: { 'x-rustci-csrf': '1', accept: 'application/json' },
  }, opts || {}));
  let body = {};
  try { body = await r.json(); } catch (_) { /* not JSON */ }
  if (!r.ok) throw new Error((body.error && body.error.message) || ('HTTP ' + r.status));
  return body;
}

// A duration for people: 850ms, 42s, 4m12s, 1h05m.
function dur(ms) {
  if (!ms || ms < 0) return '-';
  if (ms < 1000) return ms + 'ms';
  const s = Math.round(ms / 1000);
  if (s < 60) return s + 's';
  const m = Math.floor(s / 60);
  if (m < 60) return m + 'm' + String(s % 60).padStart(2, '0') + 's';
  const h = Math.floor(m / 60);
  return h + 'h' + String(m % 60).padStart(2, '0') + 'm';
}

// A measured wait: '-' only when no job started in the last hour (0 ms is a measure).
function wait(stats, ms) {
  if (!stats.started_last_hour) return '-';
  return ms > 0 ? dur(ms) : '0ms';
}

function clock(unixMs) {
  return new Date(unixMs).toLocaleTimeString([], { hour12: false });
}

// "in 3m12s (14:02:10)", "now", or "-".
function when(unixMs) {
  if (!unixMs) return '-';
  const d = unixMs - Date.now();
  return (d <= 1000 ? 'now' : 'in ' + dur(d)) + ' (' + clock(unixMs) + ')';
}

function stateTag(s) { return el('span', { class: 'state ' + s, text: s }); }

function fail(e) {
  main.replaceChildren(el('p', { class: 'error', text: 'Cannot load: ' + e.message }));
}

// Calls fn at most once per `ms`, the last call winning.
function throttle(fn, ms) {
  let timer = null, again = false;
  return function () {
    if (timer) { again = true; return; }
    fn();
    timer = setTimeout(function tick() {
      timer = null;
      if (again) { again = false; fn(); timer = setTimeout(tick, ms); }
    }, ms);
  };
}

function ready() {
  if (main.dataset.ready !== '1') {
    main.dataset.ready = '1';
    window.rustciFirstRenderMs = performance.now();
  }
}

// The live stream: `onJob(event)` for each committed job change after `from`.
function follow(query, from, onJob) {
  const sep = query ? '&' : '?';
  const es = new EventSource('/api/v1/stream' + query + sep + 'from=' + from);
  es.addEventListener('open', () => { liveBadge.dataset.state = 'live'; liveBadge.textContent = 'live'; });
  es.addEventListener('error', () => { liveBadge.dataset.state = 'reconnecting'; liveBadge.textContent = 'reconnecting'; });
  es.addEventListener('job', (e) => {
    const d = JSON.parse(e.data);
    liveBadge.dataset.revision = d.revision;
    liveBadge.textContent = 'live · rev ' + d.revision;
    onJob(d);
  });
  // The log no longer holds our revision: re-read everything from now on.
  es.addEventListener('reload', () => { es.close(); start(); });
}

async function revisionNow() {
  const f = await api('/api/v1/fleet');
  return f.stats.revision;
}

// ---- overview ---------------------------------------------------------------------
async function overview() {
  const draw = async () => {
    // One read: the stats and the advice come from one call (advice is an autoscaler
    // evaluation under the live state's lock), joined here by pool.
    const fleet = await api('/api/v1/fleet');
    const advice = new Map((fleet.advice || []).map((a) => [a.pool, a]));
    const pools = { pools: fleet.stats.pools.map((p) => Object.assign({}, p, { advice: advice.get(p.pool) || null })) };
    const rows = pools.pools.map((p) => el('tr', { 'data-pool': p.pool },
      el('td', { text: p.pool }),
      el('td', { class: 'num', text: p.stats.queued }),
      el('td', { class: 'num', text: p.stats.running }),
      el('td', { class: 'num p50', text: wait(p.stats, p.stats.wait_p50_ms) }),
      el('td', { class: 'num p95', text: wait(p.stats, p.stats.wait_p95_ms) }),
      el('td', { class: 'num', text: p.stats.started_last_hour }),
      el('td', { class: 'num busy', text: p.busy_runners + ' / ' + Math.max(0, p.runners - p.busy_runners) }),
      el('td', { class: 'num', text: p.free_slots }),
      el('td', { class: 'num', text: p.advice ? p.advice.current_runners : '-' }),
      el('td', { class: 'num', text: p.advice ? p.advice.desired_runners : '-' }),
      el('td', { class: 'why', text: p.advice ? p.advice.reason : '' })));
    // Each class under each pool, its p95 of the hour against the class's target.
    const classes = pools.pools.flatMap((p) => p.classes.map((c) => el('tr',
      { 'data-pool': p.pool, 'data-qos': c.qos },
      el('td', { text: p.pool }),
      el('td', { text: c.qos }),
      el('td', { class: 'num', text: c.stats.queued }),
      el('td', { class: 'num', text: c.stats.running }),
      el('td', { class: 'num p50', text: wait(c.stats, c.stats.wait_p50_ms) }),
      el('td', { class: 'num p95', text: wait(c.stats, c.stats.wait_p95_ms) }),
      el('td', { class: 'num target', text: dur(c.wait_target_ms) }),
      el('td', { class: 'num', text: c.stats.started_last_hour }),
      c.p95_within_target === null
        ? el('td', { class: 'met muted', text: 'no start' })
        : el('td', { class: 'met ' + (c.p95_within_target ? 'ok' : 'over'),
          text: c.p95_within_target ? 'within target' : 'over target' }))));
    const tenants = fleet.stats.tenants.map((t) => el('tr', {},
      el('td', { text: t.tenant }),
      el('td', { class: 'num', text: t.stats.queued }),
      el('td', { class: 'num', text: t.stats.running }),
      el('td', { class: 'num p50', text: wait(t.stats, t.stats.wait_p50_ms) }),
      el('td', { class: 'num p95', text: wait(t.stats, t.stats.wait_p95_ms) })));
    const queued = pools.pools.reduce((a, p) => a + p.stats.queued, 0);
    const running = pools.pools.reduce((a, p) => a + p.stats.running, 0);
    main.replaceChildren(
      el('h1', { text: 'Overview' }),
      el('div', { class: 'cards' },
        el('div', { class: 'card', id: 'waiting' }, el('b', { text: queued }), 'waiting (by pool)'),
        el('div', { class: 'card', id: 'running' }, el('b', { text: running }), 'running'),
        el('div', { class: 'card' }, el('b', { text: pools.pools.length }), 'pools')),
      el('h2', { text: 'Pools: waits of the last hour, runners and the autoscaler' }),
      el('table', { id: 'pools' },
        el('tr', {}, ['Pool', 'Waiting', 'Running', 'Wait p50', 'Wait p95', 'Started 1h',
          'Runners busy / idle', 'Free slots', 'Current', 'Desired', 'Autoscaler reason']
          .map((h, i) => el('th', { class: i && i < 10 ? 'num' : '', text: h }))),
        rows.length ? rows : el('tr', {}, el('td', { colSpan: 11, class: 'muted', text: 'No pool yet: no runner registered.' }))),
      el('h2', { text: 'Pools by QoS class: waits of the last hour against the class target' }),
      el('table', { id: 'classes' },
        el('tr', {}, ['Pool', 'QoS', 'Waiting', 'Running', 'Wait p50', 'Wait p95', 'Target',
          'Started 1h', 'p95 vs target']
          .map((h, i) => el('th', { class: i > 1 && i < 8 ? 'num' : '', text: h }))),
        classes),
      el('h2', { text: 'Tenants' }),
      el('table', { id: 'tenants' },
        el('tr', {}, ['Tenant', 'Waiting', 'Running', 'Wait p50', 'Wait p95']
          .map((h, i) => el('th', { class: i ? 'num' : '', text: h }))),
        tenants));
    ready();
    return fleet.stats.revision;
  };
  const rev = await draw();
  const redraw = throttle(() => draw().catch(fail), 1000);
  follow('', rev, redraw);
}

// ---- queue ------------------------------------------------------------------------
const PAGE = 100;

function jobRow(j) {
  const id = j.name.replace('jobs/', '');
  const why = el('td', { class: 'why' },
    el('button', { text: 'why?', onclick: () => explain(id, why) }));
  const cancel = el('button', { text: 'cancel', class: 'cancel', onclick: () => cancelJob(id, cancel) });
  // `position`: the place in the scheduler's visit order (the queue view only).
  const pos = typeof j.position === 'number' ? el('span', { class: 'muted', text: '#' + (j.position + 1) + ' ' }) : null;
  return el('tr', { 'data-job': j.name, 'data-state': j.state, 'data-position': j.position ?? '' },
    el('td', {}, pos, j.name),
    el('td', { text: j.tenant }),
    el('td', { text: j.qos }),
    el('td', { class: 'st' }, stateTag(j.state)),
    el('td', { class: 'start', text: j.start_ms ? 'started ' + clock(j.start_ms) : when(j.predicted_start_unix_ms) }),
    el('td', { class: 'num run', text: dur(j.predicted_run_ms) + ' / ' + dur(j.predicted_run_upper_ms) }),
    el('td', { class: 'cmd muted', text: (j.job_name || j.command || '').slice(0, 60) }),
    why,
    el('td', {}, ['QUEUED', 'RUNNING', 'CREATED', 'MANUAL'].includes(j.state) ? cancel : null));
}

async function explain(id, cell) {
  try {
    const j = await api('/api/v1/jobs/' + id);
    const e = j.explanation;
    cell.replaceChildren(e.reason + ': ' + e.message +
      (e.queue_position ? ' (queue position ' + e.queue_position + ')' : ''));
  } catch (err) { cell.textContent = err.message; }
}

async function cancelJob(id, button) {
  button.disabled = true;
  try {
    const j = await api('/api/v1/jobs/' + id + '/cancel', { method: 'POST' });
    updateRow(j);
  } catch (err) { button.textContent = err.message; }
}

function updateRow(j) {
  const row = main.querySelector('tr[data-job="' + CSS.escape(j.name) + '"]');
  if (!row) return false;
  // Stream events carry no place in the queue: the row keeps the one it was drawn with
  // until the page is read again.
  if (j.position === undefined && row.dataset.position !== '') {
    j = Object.assign({}, j, { position: Number(row.dataset.position) });
  }
  row.replaceWith(jobRow(j));
  return true;
}

async function queue() {
  const params = new URLSearchParams(location.search);
  const state = params.get('state') || 'queued';
  const tokens = [''];
  let page = 0, next = '';
  const body = el('tbody', { id: 'jobs' });
  const info = el('span', { class: 'muted' });
  const prev = el('button', { text: '← previous', onclick: () => { if (page > 0) { page--; load(); } } });
  const nextB = el('button', { text: 'next →', onclick: () => { if (next) { tokens[page + 1] = next; page++; load(); } } });
  const pick = el('select', { onchange: () => { location.search = '?state=' + pick.value; } },
    ['queued', 'running', 'any'].map((s) => el('option', { value: s, text: s, selected: s === state })));
  main.replaceChildren(
    el('h1', { text: 'Queue' }),
    el('div', { class: 'pager' }, 'state', pick, prev, nextB, info),
    el('table', {},
      el('thead', {}, el('tr', {}, ['Job', 'Tenant', 'QoS', 'State', 'Predicted start',
        'Run: estimate / P90', 'Name', 'Why it waits', ''].map((h) => el('th', { text: h })))),
      body));
  let loads = 0;
  async function load() {
    // Waiting jobs in the order the scheduler will visit them; other states by id.
    const q = new URLSearchParams({ page_size: PAGE });
    if (state !== 'queued') q.set('state', state);
    if (tokens[page]) q.set('page_token', tokens[page]);
    const seq = ++loads;
    const r = await api((state === 'queued' ? '/api/v1/queue?' : '/api/v1/jobs?') + q);
    if (seq !== loads) return; // a later read (another page, a refresh) answers instead
    next = r.next_page_token;
    // An explanation the user opened stays open on the row of its job.
    const open = new Map([...body.querySelectorAll('tr[data-job]')]
      .filter((row) => row.querySelector('.why') && !row.querySelector('.why button'))
      .map((row) => [row.dataset.job, row.querySelector('.why')]));
    const rows = r.jobs.map(jobRow);
    for (const row of rows) {
      const why = open.get(row.dataset.job);
      if (why) row.querySelector('.why').replaceWith(why);
    }
    body.replaceChildren(...rows);
    if (!r.jobs.length) body.append(el('tr', {}, el('td', { colSpan: 9, class: 'muted', text: 'No job.' })));
    info.textContent = 'page ' + (page + 1) + ' · ' + r.jobs.length + ' jobs' + (next ? ' · more' : '');
    prev.disabled = page === 0;
    nextB.disabled = !next;
  }
  const rev = await revisionNow();
  await load();
  ready();
  // Waiting jobs: a start, an end or a new job moves later jobs' places, and a started
  // job leaves the view; the page is read again, at most once a second, but not while
  // the pointer is on the rows (a click must land on the job it was aimed at). A failed
  // read is said beside the pager; the next change tries again.
  let held = false;
  const refresh = throttle(() => {
    if (body.matches(':hover')) { held = true; return; }
    held = false;
    load().catch((e) => { info.textContent = 'refresh failed: ' + e.message; });
  }, 1000);
  body.addEventListener('mouseleave', () => { if (held) refresh(); });
  follow('', rev, (d) => {
    if (state === 'queued') {
      updateRow(d.job);
      refresh();
      return;
    }
    if (updateRow(d.job)) return;
    // A new job joins the last page while it has room.
    const wanted = state === 'any' || d.job.state === state.toUpperCase();
    if (wanted && !next && body.querySelectorAll('tr[data-job]').length < PAGE) {
      body.querySelector('td[colspan]') && body.replaceChildren();
      body.append(jobRow(d.job));
    }
  });
}

// ---- pipelines --------------------------------------------------------------------
async function pipelines() {
  const draw = async () => {
    const r = await api('/api/v1/pipelines?page_size=100');
    main.replaceChildren(el('h1', { text: 'Pipelines' }),
      el('table', { id: 'pipelines' },
        el('tr', {}, ['Pipeline', 'Tenant', 'Project', 'Ref', 'State', 'Created', 'Predicted finish']
          .map((h) => el('th', { text: h }))),
        r.pipelines.map((p) => el('tr', { 'data-pipeline': p.name },
          el('td', {}, el('a', { href: '/' + p.name, text: p.name })),
          el('td', { text: p.tenant }), el('td', { text: p.project }), el('td', { text: p.ref }),
          el('td', {}, stateTag(p.state)),
          el('td', { text: clock(p.create_ms) }),
          el('td', { text: p.end_ms ? 'ended ' + clock(p.end_ms) : when(p.predicted_finish_ms) })))));
    ready();
  };
  const rev = await revisionNow();
  await draw();
  follow('', rev, throttle(() => draw().catch(fail), 1000));
}

async function pipeline(id) {
  const draw = async () => {
    const p = await api('/api/v1/pipelines/' + id);
    const stages = [];
    for (const j of p.jobs) {
      let s = stages.find((x) => x.index === j.stage_index && x.name === j.stage);
      if (!s) { s = { index: j.stage_index, name: j.stage, jobs: [] }; stages.push(s); }
      s.jobs.push(j);
    }
    stages.sort((a, b) => a.index - b.index);
    const times = (j) => j.end_ms ? 'took ' + dur(j.end_ms - j.start_ms)
      : j.start_ms ? 'running ' + dur(Date.now() - j.start_ms) : '';
    main.replaceChildren(
      el('h1', {}, p.name + ' ', stateTag(p.state)),
      el('div', { class: 'cards' },
        el('div', { class: 'card' }, el('b', { text: p.project || '-' }), 'project @ ' + (p.ref || '-')),
        el('div', { class: 'card', id: 'finish' }, el('b', { text: p.end_ms ? clock(p.end_ms) : when(p.predicted_finish_ms) }),
          p.end_ms ? 'ended' : 'predicted finish'),
        el('div', { class: 'card', id: 'critical' }, el('b', { text: dur(p.critical_path_ms) }),
          'critical path: ' + (p.critical_path.join(' → ') || '-'))),
      el('div', { class: 'stages', id: 'stages' }, stages.map((s) => el('div', { class: 'stage', 'data-stage': s.name },
        el('h3', { text: s.name }),
        s.jobs.map((j) => el('div', { class: 'job' + (j.on_critical_path ? ' cp' : ''), 'data-job': j.job, 'data-state': j.state },
          el('div', { class: 'name', text: j.name }),
          el('div', {}, stateTag(j.state), ' ', el('span', { class: 'muted', text: times(j) })),
          j.runner ? el('div', { class: 'muted', text: j.runner }) : null))))));
    ready();
  };
  const rev = await revisionNow();
  await draw();
  follow('?pipeline=' + encodeURIComponent(id), rev, throttle(() => draw().catch(fail), 500));
}

// ---- tenants ----------------------------------------------------------------------
async function tenants() {
  const draw = async () => {
    const r = await api('/api/v1/tenants');
    main.replaceChildren(el('h1', { text: 'Tenants: fair-share usage against weight' }),
      el('p', { class: 'muted', text: 'Usage is slot-seconds decayed with a half-life of ' + dur(r.half_life_ms) +
        '; the bar is the share of all usage, the red mark the share of the weights.' }),
      el('table', { id: 'shares' },
        el('tr', {}, ['Tenant', 'Weight', 'Weight share', 'Usage (slot-s)', 'Usage share', '']
          .map((h) => el('th', { text: h }))),
        r.tenants.map((t) => el('tr', { 'data-tenant': t.tenant },
          el('td', { text: t.tenant }),
          el('td', { class: 'num', text: t.weight }),
          el('td', { class: 'num', text: (100 * t.weight_share).toFixed(1) + '%' }),
          el('td', { class: 'num', text: t.usage_slot_s.toFixed(0) }),
          el('td', { class: 'num', text: (100 * t.usage_share).toFixed(1) + '%' }),
          el('td', {}, (() => {
            const b = el('div', { class: 'bar' }, el('span'), el('i'));
            b.firstChild.style.width = (100 * t.usage_share) + '%';
            b.lastChild.style.left = (100 * t.weight_share) + '%';
            return b;
          })())))));
    ready();
  };
  const rev = await revisionNow();
  await draw();
  follow('', rev, throttle(() => draw().catch(fail), 2000));
}

// ---- model ------------------------------------------------------------------------
async function model() {
  const m = await api('/api/v1/model');
  const row = (name, x) => x ? el('tr', {}, el('td', { text: name }),
    el('td', { class: 'num', text: x.mae_s.toFixed(1) }),
    el('td', { class: 'num', text: (100 * x.median_ape).toFixed(1) + '%' }),
    el('td', { class: 'num', text: (100 * x.under_rate).toFixed(1) + '%' }),
    el('td', { class: 'num', text: x.n })) : null;
  const e = m.evaluation;
  main.replaceChildren(el('h1', { text: 'Run-time model' }),
    el('p', {}, m.version ? 'Version in use: ' : 'No trained model: the built-in estimator is in use.',
      m.version ? el('b', { id: 'version', text: m.version }) : null,
      m.usage ? ' (used as ' + m.usage + ')' : ''),
    e ? el('div', {},
      el('h2', { text: 'Last evaluation: ' + e.test_jobs + ' held-out jobs after ' + e.train_jobs + ' training jobs' }),
      el('table', { id: 'evaluation' },
        el('tr', {}, ['Estimator', 'MAE (s)', 'Median APE', 'Ran longer than predicted', 'Jobs']
          .map((h) => el('th', { text: h }))),
        row('model', e.model), row('linear', e.linear), row('forest', e.forest),
        row('requested (baseline)', e.baselines.requested),
        row('Tsafrir (baseline)', e.baselines.tsafrir),
        row('median of last 5 (baseline)', e.baselines.last5_median))) : null);
  ready();
}

function start() {
  const path = location.pathname;
  const route = path === '/' ? ['overview', overview]
    : path === '/queue' ? ['queue', queue]
    : path === '/pipelines' ? ['pipelines', pipelines]
    : path.startsWith('/pipelines/') ? ['pipelines', () => pipeline(path.slice('/pipelines/'.length))]
    : path === '/tenants' ? ['tenants', tenants]
    : path === '/model' ? ['model', model]
    : ['overview', overview];
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('on', a.dataset.page === route[0]);
  route[1]().catch(fail);
}

start();
