// The status page: polls /readyz, /v1/policies and /metrics every two
// seconds and draws what it sees. Values are written with textContent only,
// never parsed as HTML.
'use strict';

const POLL_MS = 2000;
const KEEP_SAMPLES = 151; // five minutes of samples, 150 intervals

// Parses Prometheus text: one {name, labels, value} per sample line.
function parseMetrics(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels = {};
    const pairs = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
    let pair;
    while ((pair = pairs.exec(match[3] || '')) !== null) {
      labels[pair[1]] = pair[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    }
    samples.push({ name: match[1], labels, value: Number(match[4]) });
  }
  return samples;
}

// The first sample's value of a metric without labels, or undefined.
function gauge(samples, name) {
  const found = samples.find((s) => s.name === name);
  return found === undefined ? undefined : found.value;
}

// Cumulative decisions per policy: {policy: {allowed, denied}}. A shadow
// policy's would-be denials count as denied.
function totalsByPolicy(samples) {
  const totals = {};
  for (const s of samples) {
    if (s.name !== 'floodgate_checks_total') continue;
    const policy = s.labels.policy;
    const entry = totals[policy] || (totals[policy] = { allowed: 0, denied: 0 });
    if (s.labels.decision === 'allowed') entry.allowed += s.value;
    else entry.denied += s.value;
  }
  return totals;
}

// Per-second rates between consecutive history entries ({t, allowed,
// denied}, t in ms). A counter that went down (a restart) restarts at 0.
function rates(history) {
  const out = [];
  for (let i = 1; i < history.length; i++) {
    const seconds = (history[i].t - history[i - 1].t) / 1000;
    if (seconds <= 0) continue;
    const per = (key) => Math.max(0, history[i][key] - history[i - 1][key]) / seconds;
    out.push({ allowed: per('allowed'), denied: per('denied') });
  }
  return out;
}

// SVG polyline points for values drawn in a width × height box.
function points(values, max, width, height) {
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  return values
    .map((v, i) => `${(i * step).toFixed(1)},${(height - (max > 0 ? (v / max) * height : 0)).toFixed(1)}`)
    .join(' ');
}

// The request for the most-denied keys: path and fetch options.
function topRequest(token, n) {
  return [
    `/v1/admin/top?n=${n}`,
    { cache: 'no-store', headers: { Authorization: `Bearer ${token}` } },
  ];
}

// Rows of the most-denied table from a /v1/admin/top answer:
// [policy, key, count, "lower – upper"], policies with no denial left out.
function topRows(answer) {
  const rows = [];
  for (const p of answer.policies || []) {
    for (const e of p.top || []) {
      rows.push([p.policy, e.key, String(e.count), `${e.lower} – ${e.upper}`]);
    }
  }
  return rows;
}

// What to say about a /v1/admin/top answer's HTTP status.
function topStatus(status) {
  if (status === 401) return 'the token was refused (401): give the token of [admin]';
  if (status === 404) return 'the admin API is off on this listener ([admin] is not configured, or has a listener of its own)';
  return `the admin API answered HTTP ${status}`;
}

if (typeof module !== 'undefined') {
  module.exports = { parseMetrics, gauge, totalsByPolicy, rates, points, topRequest, topRows, topStatus };
}

if (typeof document !== 'undefined') {
  const history = new Map(); // policy → [{t, allowed, denied}]
  const SVG = 'http://www.w3.org/2000/svg';
  const text = (id, value) => { document.getElementById(id).textContent = value; };

  const getJson = async (path) => {
    const response = await fetch(path, { cache: 'no-store' });
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    return response.json();
  };

  const cell = (row, value, className) => {
    const td = row.insertCell();
    td.textContent = value;
    if (className) td.className = className;
    return td;
  };

  const chart = (name, series) => {
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('class', 'chart');
    svg.setAttribute('viewBox', '0 0 240 40');
    svg.setAttribute('preserveAspectRatio', 'none');
    svg.dataset.policy = name;
    svg.dataset.samples = String(series.length);
    const max = Math.max(1, ...series.map((r) => Math.max(r.allowed, r.denied)));
    for (const kind of ['allowed', 'denied']) {
      const line = document.createElementNS(SVG, 'polyline');
      line.setAttribute('class', kind);
      line.setAttribute('points', points(series.map((r) => r[kind]), max, 240, 40));
      svg.appendChild(line);
    }
    const last = series[series.length - 1] || { allowed: 0, denied: 0 };
    const title = document.createElementNS(SVG, 'title');
    title.textContent = `${last.allowed.toFixed(1)} allowed/s, ${last.denied.toFixed(1)} denied/s`;
    svg.appendChild(title);
    return svg;
  };

  const render = (ready, policies, samples, now) => {
    text('store', ready.store);
    const fallback = gauge(samples, 'floodgate_store_fallback');
    text('fallback', fallback === 1 ? 'on: Redis unreachable, the fallback answers' : 'off');
    document.getElementById('fallback').className = fallback === 1 ? 'fallback-on' : '';
    const sidecars = gauge(samples, 'floodgate_instances');
    text('sidecars', ready.store === 'local' || sidecars === undefined ? '1 (local store)' : String(sidecars));
    text('policy-count', String(policies.length));
    text('updated', new Date(now).toLocaleTimeString());

    const totals = totalsByPolicy(samples);
    const body = document.querySelector('#policies tbody');
    body.replaceChildren();
    for (const p of policies) {
      const total = totals[p.name] || { allowed: 0, denied: 0 };
      const seen = history.get(p.name) || [];
      seen.push({ t: now, allowed: total.allowed, denied: total.denied });
      history.set(p.name, seen.slice(-KEEP_SAMPLES));
      const row = body.insertRow();
      row.dataset.policy = p.name;
      cell(row, p.name);
      cell(row, p.algorithm);
      cell(row, p.window_ms ? `${p.limit} / ${p.window_ms / 1000}s` : String(p.limit), 'num');
      cell(row, p.key.join(', '));
      cell(row, p.mode);
      cell(row, String(total.allowed), 'num allowed');
      cell(row, String(total.denied), 'num denied');
      row.insertCell().appendChild(chart(p.name, rates(history.get(p.name))));
    }
    for (const name of history.keys()) {
      if (!policies.some((p) => p.name === name)) history.delete(name);
    }
  };

  // The admin token: in this closure only, never stored.
  let adminToken = null;

  const showTop = async () => {
    if (adminToken === null) return;
    const status = document.getElementById('admin-status');
    const table = document.getElementById('top');
    const [path, options] = topRequest(adminToken, 5);
    const response = await fetch(path, options);
    if (!response.ok) {
      if (response.status === 401) adminToken = null;
      status.textContent = topStatus(response.status);
      table.hidden = true;
      return;
    }
    const rows = topRows(await response.json());
    const body = table.querySelector('tbody');
    body.replaceChildren();
    for (const values of rows) {
      const row = body.insertRow();
      values.forEach((v, i) => cell(row, v, i >= 2 ? 'num' : ''));
    }
    table.hidden = rows.length === 0;
    status.textContent = rows.length === 0 ? 'no denials in the last minutes' : `updated ${new Date().toLocaleTimeString()}`;
  };

  const setUpAdmin = () => {
    const form = document.getElementById('admin-form');
    const input = document.getElementById('admin-token');
    const forget = document.getElementById('admin-forget');
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      adminToken = input.value.trim() || null;
      input.value = '';
      forget.hidden = adminToken === null;
      showTop().catch((e) => { document.getElementById('admin-status').textContent = e.message; });
    });
    forget.addEventListener('click', () => {
      adminToken = null;
      forget.hidden = true;
      document.getElementById('top').hidden = true;
      document.getElementById('admin-status').textContent = 'no token given';
    });
  };

  const poll = async () => {
    const error = document.getElementById('error');
    try {
      const [ready, listed, metrics] = await Promise.all([
        getJson('/readyz'),
        getJson('/v1/policies'),
        fetch('/metrics', { cache: 'no-store' }).then((r) => r.text()),
      ]);
      render(ready, listed.policies, parseMetrics(metrics), Date.now());
      await showTop();
      error.hidden = true;
    } catch (e) {
      error.textContent = `floodgate did not answer: ${e.message}`;
      error.hidden = false;
    }
    setTimeout(poll, POLL_MS);
  };

  document.addEventListener('DOMContentLoaded', () => {
    setUpAdmin();
    poll();
  });
}
