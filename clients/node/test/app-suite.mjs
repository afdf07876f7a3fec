// The same tests for every framework: a real app on port 0 with the
// middleware, against a real floodgate (or a stub sidecar for what a test
// needs floodgate to say). `makeApp(options, routes)` builds the app;
// routes are `path → async (req) => text`.

import { test as nodeTest, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startFloodgate, stubSidecar, silentSidecar, deadUrl, request, openRequest, eventually,
} from './helpers.mjs';

/** Handlers that wait until the test lets them answer. */
function holder() {
  const waiting = [];
  return {
    hold: () => new Promise((resolve) => waiting.push(resolve)),
    entered: (n = 1, timeoutMs = 5000) => eventually(() => waiting.length >= n, timeoutMs, `${n} request(s) in the handler`),
    releaseAll: () => waiting.splice(0).forEach((resolve) => resolve()),
  };
}

function routes(held) {
  return {
    '/ai': async () => 'ok',
    '/free': async () => 'ok',
    '/slow': async () => {
      await held.hold();
      return 'done';
    },
    '/seen': async (req) => JSON.stringify({ allowed: req.floodgate.allowed, failed: req.floodgate.failed }),
    '/settle': async (req) => JSON.stringify(await req.floodgate.settle(42)),
  };
}

/** The path's first segment is the endpoint class (`/ai` → ai). */
const endpoint = (req) => (req.originalUrl || req.url).split('?')[0].split('/')[1];

// Nothing logged, and room for a loaded test machine (the timeout tests set
// their own).
const quiet = { logger: false, timeoutMs: 5000 };

export function appSuite(name, makeApp) {
  // A test that hangs fails instead of blocking the run.
  const test = (title, body) => nodeTest(title, { timeout: 20_000 }, body);
  let floodgate;
  let app;
  const held = holder();
  before(async () => {
    floodgate = await startFloodgate();
    app = await makeApp({ url: floodgate.url, endpoint, ...quiet }, routes(held));
  });
  after(async () => {
    held.releaseAll();
    await app.close();
    await floodgate.stop();
  });

  /** A throwaway app with its own options (closed by the caller). */
  const withApp = async (options, body) => {
    const other = await makeApp({ endpoint, ...quiet, ...options }, routes(held));
    try {
      await body(other);
    } finally {
      held.releaseAll();
      await other.close();
    }
  };

  test(`${name}: allowed requests carry the RateLimit headers; the denial is 429 with Retry-After and floodgate's JSON body`, async () => {
    const user = { 'x-user-id': `${name}-deny` };
    const first = await request(`${app.url}/ai`, { headers: user });
    assert.equal(first.status, 200);
    assert.equal(first.text, 'ok');
    assert.equal(first.headers['ratelimit-policy'], '"ai-per-user";q=2;w=3600');
    assert.match(first.headers.ratelimit, /^"ai-per-user";r=1;t=\d+$/);
    assert.equal(first.headers['retry-after'], undefined);
    assert.equal((await request(`${app.url}/ai`, { headers: user })).status, 200);
    const denied = await request(`${app.url}/ai`, { headers: user });
    assert.equal(denied.status, 429);
    assert.match(denied.headers['content-type'], /^application\/json/);
    assert.ok(Number(denied.headers['retry-after']) >= 1);
    assert.match(denied.headers.ratelimit, /r=0/);
    assert.equal(denied.headers['ratelimit-policy'], '"ai-per-user";q=2;w=3600');
    const body = denied.json();
    assert.equal(body.allowed, false);
    assert.equal(body.policy, 'ai-per-user');
    assert.ok(body.retry_after_ms > 0);
    assert.equal(body.statuses[0].policy, 'ai-per-user');
    // Another user has their own quota.
    assert.equal((await request(`${app.url}/ai`, { headers: { 'x-user-id': `${name}-other` } })).status, 200);
  });

  test(`${name}: a request no policy applies to passes without rate-limit headers; req.floodgate is set`, async () => {
    const res = await request(`${app.url}/seen`, { headers: { 'x-user-id': 'u' } });
    assert.equal(res.status, 200);
    assert.deepEqual(res.json(), { allowed: true, failed: false });
    assert.equal(res.headers.ratelimit, undefined);
  });

  test(`${name}: hits(req) is the cost`, async () => {
    await withApp({ url: floodgate.url, hits: (req) => Number(req.headers['x-cost'] || 1) }, async (costly) => {
      const headers = { 'x-user-id': `${name}-hits`, 'x-cost': '2' };
      const first = await request(`${costly.url}/ai`, { headers });
      assert.equal(first.status, 200);
      assert.match(first.headers.ratelimit, /r=0/);
      assert.equal((await request(`${costly.url}/ai`, { headers: { ...headers, 'x-cost': '1' } })).status, 429);
    });
  });

  test(`${name}: an over-long user header is hashed, not refused by floodgate: still limited`, async () => {
    const headers = { 'x-user-id': 'x'.repeat(1000) };
    const statuses = [];
    for (let i = 0; i < 3; i += 1) statuses.push((await request(`${app.url}/ai`, { headers })).status);
    assert.deepEqual(statuses, [200, 200, 429]);
    assert.equal(app.client.stats.failures, 0);
  });

  const slot = (user) => app.client.peek({ endpoint: 'slow', user });

  test(`${name}: a lease is released when the response finishes (concurrency 1 admits the next)`, async () => {
    const headers = { 'x-user-id': `${name}-finish` };
    const first = request(`${app.url}/slow`, { headers });
    await held.entered();
    const second = await request(`${app.url}/slow`, { headers });
    assert.equal(second.status, 429, 'the slot is taken while the first runs');
    assert.equal(second.json().policy, 'one-at-a-time');
    held.releaseAll();
    assert.equal((await first).status, 200);
    await eventually(async () => (await slot(`${name}-finish`)).allowed, 5000, 'the slot is free');
    const third = request(`${app.url}/slow`, { headers });
    await held.entered();
    held.releaseAll();
    assert.equal((await third).status, 200);
  });

  test(`${name}: a lease is released when the client goes away`, async () => {
    const headers = { 'x-user-id': `${name}-abort` };
    const first = openRequest(`${app.url}/slow`, headers);
    await held.entered();
    assert.equal((await request(`${app.url}/slow`, { headers })).status, 429);
    first.abort();
    await eventually(async () => (await slot(`${name}-abort`)).allowed, 5000, 'the slot is free after the abort');
    held.releaseAll(); // the aborted request's handler
    const next = request(`${app.url}/slow`, { headers });
    await held.entered();
    held.releaseAll();
    assert.equal((await next).status, 200);
  });

  test(`${name}: each lease is released exactly once (finish, then close)`, async () => {
    const stub = await stubSidecar((path) =>
      path === '/v1/check'
        ? { status: 200, body: { allowed: true, policy: 'c', limit: 1, remaining: 0, lease: 'c:k/1/1', statuses: [] } }
        : { status: 204, body: '' });
    await withApp({ url: stub.url }, async (leased) => {
      assert.equal((await request(`${leased.url}/free`)).status, 200);
      const aborted = openRequest(`${leased.url}/slow`);
      await held.entered();
      aborted.abort();
      await eventually(() => stub.requests.filter((r) => r.path === '/v1/release').length >= 2, 5000, 'two releases');
      await new Promise((r) => setTimeout(r, 200));
      const releases = stub.requests.filter((r) => r.path === '/v1/release');
      assert.deepEqual(releases.map((r) => r.body), [{ lease: 'c:k/1/1' }, { lease: 'c:k/1/1' }]);
      assert.equal(leased.client.stats.releases, 2);
    });
    await stub.close();
  });

  test(`${name}: a client that leaves while floodgate is asked: its lease is released, the handler does not run`, async () => {
    const stub = await stubSidecar((path) =>
      path === '/v1/check'
        ? { status: 200, delayMs: 300, body: { allowed: true, policy: 'c', limit: 1, remaining: 0, lease: 'c:k/2/1', statuses: [] } }
        : { status: 204, body: '' });
    await withApp({ url: stub.url, timeoutMs: 2000 }, async (leased) => {
      const gone = openRequest(`${leased.url}/slow`);
      await eventually(() => stub.requests.length === 1, 5000, 'the check was sent');
      gone.abort();
      await eventually(() => stub.requests.length === 2, 5000, 'the release');
      assert.deepEqual(stub.requests[1], { path: '/v1/release', body: { lease: 'c:k/2/1' } });
      await new Promise((r) => setTimeout(r, 100));
      await assert.rejects(held.entered(1, 200), 'the handler never ran');
    });
    await stub.close();
  });

  test(`${name}: skip(req) exempts requests from checks`, async () => {
    await withApp({ url: floodgate.url, skip: (req) => (req.originalUrl || req.url) === '/free' }, async (skipping) => {
      const headers = { 'x-user-id': `${name}-skip` };
      assert.equal((await request(`${skipping.url}/free`, { headers })).status, 200);
      assert.equal(skipping.client.stats.checks, 0);
      assert.equal((await request(`${skipping.url}/ai`, { headers })).status, 200);
      assert.equal(skipping.client.stats.checks, 1);
    });
  });

  test(`${name}: sidecar down, fail open: the app answers`, async () => {
    await withApp({ url: await deadUrl() }, async (open) => {
      const res = await request(`${open.url}/seen`);
      assert.equal(res.status, 200);
      assert.deepEqual(res.json(), { allowed: true, failed: true });
      assert.equal(open.client.stats.failedOpen, 1);
    });
  });

  test(`${name}: sidecar down, fail closed: 503 with a JSON error`, async () => {
    await withApp({ url: await deadUrl(), failOpen: false }, async (closed) => {
      const res = await request(`${closed.url}/free`);
      assert.equal(res.status, 503);
      assert.deepEqual(res.json(), { error: 'rate limiter unavailable' });
      assert.equal(res.headers['retry-after'], '1');
      assert.equal(closed.client.stats.failedClosed, 1);
    });
  });

  test(`${name}: a sidecar that never answers: the request is answered once the timeout passes`, async () => {
    const silent = await silentSidecar();
    await withApp({ url: silent.url, timeoutMs: 250, failOpen: false }, async (slow) => {
      const started = Date.now();
      const res = await request(`${slow.url}/free`);
      assert.ok(Date.now() - started >= 240);
      assert.equal(res.status, 503);
      assert.equal(slow.client.stats.failedClosed, 1);
    });
    await silent.close();
  });

  test(`${name}: the deciding policy's deny_status is the answer's status, with floodgate's headers and body`, async () => {
    const body = {
      allowed: false, policy: 'gpu', limit: 1, remaining: 0, reset_after_ms: 2000, retry_after_ms: 2000,
      deny_status: 503, waited_ms: 0, statuses: [],
    };
    const stub = await stubSidecar(() => ({
      status: 429,
      headers: { 'retry-after': '2', ratelimit: '"gpu";r=0;t=2', 'ratelimit-policy': '"gpu";q=1;w=60' },
      body,
    }));
    await withApp({ url: stub.url }, async (gpu) => {
      const res = await request(`${gpu.url}/free`);
      assert.equal(res.status, 503);
      assert.equal(res.headers['retry-after'], '2');
      assert.equal(res.headers.ratelimit, '"gpu";r=0;t=2');
      assert.equal(res.headers['ratelimit-policy'], '"gpu";q=1;w=60');
      assert.deepEqual(res.json(), body);
    });
    await stub.close();
  });

  test(`${name}: with reserve, req.floodgate.settle(actual) settles the reservation`, async () => {
    const stub = await stubSidecar((path) =>
      path === '/v1/check'
        ? { status: 200, body: { allowed: true, policy: 'tokens', limit: 1000, remaining: 500, settlement: 's-9', waited_ms: 0, statuses: [] } }
        : { status: 200, body: { settled: true } });
    await withApp({ url: stub.url, reserve: true, hits: 500, maxWaitMs: 100 }, async (tokens) => {
      const res = await request(`${tokens.url}/settle`);
      assert.equal(res.status, 200);
      assert.equal(res.json().settled, true);
      assert.deepEqual(stub.requests[0].body.reserve, true);
      assert.deepEqual(stub.requests[0].body.hits, 500);
      assert.deepEqual(stub.requests[0].body.max_wait_ms, 100);
      assert.deepEqual(stub.requests[1], { path: '/v1/settle', body: { settlement: 's-9', actual: 42 } });
    });
    await stub.close();
  });
}
