// The client against a real floodgate, and against stub sidecars that fail
// in every way a sidecar can.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { FloodgateClient, FloodgateError } from '@floodgate/client';
import {
  startFloodgate, stubSidecar, silentSidecar, deadUrl, recordingLogger, listen, close,
} from './helpers.mjs';

let floodgate;
before(async () => {
  floodgate = await startFloodgate();
});
after(async () => {
  await floodgate.stop();
});

// Nothing logged, and room for a loaded test machine (the timeout tests set
// their own, after these).
const quiet = { logger: false, timeoutMs: 5000 };

test('check allows, then denies with the deciding policy, its headers and body', async () => {
  const client = new FloodgateClient({ url: floodgate.url, ...quiet });
  const attributes = { endpoint: 'ai', user: 'client-deny' };
  const first = await client.check(attributes);
  assert.equal(first.allowed, true);
  assert.equal(first.failed, false);
  assert.equal(first.status, 200);
  assert.equal(first.policy, 'ai-per-user');
  assert.equal(first.limit, 2);
  assert.equal(first.remaining, 1);
  assert.equal(first.headers['ratelimit-policy'], '"ai-per-user";q=2;w=3600');
  assert.match(first.headers.ratelimit, /^"ai-per-user";r=1;t=\d+$/);
  assert.equal(first.headers['retry-after'], undefined);
  await client.check(attributes);
  const denied = await client.check(attributes);
  assert.equal(denied.allowed, false);
  assert.equal(denied.status, 429);
  assert.equal(denied.denyStatus, 429); // the default deny_status of a denial
  assert.equal(denied.body.policy, 'ai-per-user');
  assert.equal(denied.body.allowed, false);
  assert.ok(denied.retryAfterMs > 0);
  assert.ok(Number(denied.headers['retry-after']) >= 1);
  assert.match(denied.headers.ratelimit, /r=0/);
  assert.deepEqual(
    { checks: client.stats.checks, allowed: client.stats.allowed, denied: client.stats.denied, failures: client.stats.failures },
    { checks: 3, allowed: 2, denied: 1, failures: 0 },
  );
  client.close();
});

test('a check no policy applies to is allowed without headers', async () => {
  const client = new FloodgateClient({ url: floodgate.url, ...quiet });
  const decision = await client.check({ endpoint: 'nothing', user: 'u' });
  assert.equal(decision.allowed, true);
  assert.equal(decision.policy, '');
  assert.deepEqual(decision.headers, {});
  client.close();
});

test('peek charges nothing', async () => {
  const client = new FloodgateClient({ url: floodgate.url, ...quiet });
  const attributes = { endpoint: 'ai', user: 'client-peek' };
  for (let i = 0; i < 3; i += 1) {
    const peek = await client.peek(attributes);
    assert.equal(peek.allowed, true);
    assert.equal(peek.remaining, 2);
  }
  assert.equal((await client.check(attributes)).remaining, 1);
  client.close();
});

test('release frees a concurrency slot (limit 1 admits the next check)', async () => {
  const client = new FloodgateClient({ url: floodgate.url, ...quiet });
  const attributes = { endpoint: 'slow', user: 'client-lease' };
  const first = await client.check(attributes);
  assert.equal(first.allowed, true);
  assert.ok(first.lease, 'a concurrency check returns a lease');
  assert.equal((await client.check(attributes)).allowed, false);
  assert.equal(await client.release(first.lease), true);
  const next = await client.check(attributes);
  assert.equal(next.allowed, true);
  assert.equal(await client.release(next.lease), true);
  assert.equal(client.stats.releases, 2);
  client.close();
});

test('checks reuse one kept-alive connection', async () => {
  let connections = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"allowed":true,"policy":"","limit":0,"remaining":0,"reset_after_ms":0,"retry_after_ms":0,"statuses":[]}');
    });
  });
  server.on('connection', () => (connections += 1));
  const url = await listen(server);
  const client = new FloodgateClient({ url, ...quiet });
  for (let i = 0; i < 5; i += 1) assert.equal((await client.check({ user: 'u' })).allowed, true);
  assert.equal(connections, 1);
  client.close();
  await close(server);
});

test('a kept-alive connection closed by the sidecar while idle: the check goes again on a new one', async () => {
  // Connection 1 answers once, then closes when the next request arrives
  // (the race of an idle timeout); connection 2 answers.
  const answer = '{"allowed":true,"policy":"","limit":0,"remaining":0,"reset_after_ms":0,"retry_after_ms":0,"statuses":[]}';
  let connections = 0;
  const server = net.createServer((socket) => {
    connections += 1;
    let requests = 0;
    socket.on('error', () => {});
    socket.on('data', () => {
      requests += 1;
      if (connections === 1 && requests === 2) {
        socket.destroy();
        return;
      }
      socket.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${answer.length}\r\n\r\n${answer}`);
    });
  });
  const url = await listen(server);
  const client = new FloodgateClient({ url, ...quiet });
  assert.equal((await client.check({ user: 'u' })).failed, false);
  const second = await client.check({ user: 'u' });
  assert.equal(second.failed, false, `${second.error}`);
  assert.equal(connections, 2);
  assert.equal(client.stats.failures, 0);
  client.close();
  await close(server);
});

test('a sidecar that refuses connections: fail open, counted, logged', async () => {
  const logger = recordingLogger();
  const errors = [];
  const client = new FloodgateClient({ url: await deadUrl(), logger, onError: (err) => errors.push(err) });
  const decision = await client.check({ user: 'u' });
  assert.equal(decision.allowed, true);
  assert.equal(decision.failed, true);
  assert.equal(decision.error.code, 'unreachable');
  assert.equal(client.stats.failures, 1);
  assert.equal(client.stats.failedOpen, 1);
  assert.equal(client.stats.failedClosed, 0);
  assert.equal(errors.length, 1);
  assert.ok(errors[0] instanceof FloodgateError);
  assert.equal(logger.lines.length, 1);
  assert.match(logger.lines[0], /^floodgate: floodgate unreachable \(check\).*failing open$/);
});

test('a sidecar that refuses connections: fail closed denies with 503', async () => {
  const client = new FloodgateClient({ url: await deadUrl(), failOpen: false, ...quiet });
  const decision = await client.check({ user: 'u' });
  assert.equal(decision.allowed, false);
  assert.equal(decision.failed, true);
  assert.equal(decision.status, 503);
  assert.deepEqual(decision.body, { error: 'rate limiter unavailable' });
  assert.equal(decision.headers['retry-after'], '1');
  assert.equal(client.stats.failedClosed, 1);
  assert.equal(client.stats.failedOpen, 0);
});

test('a sidecar that accepts and never answers: the check ends at the timeout', async () => {
  const silent = await silentSidecar();
  const client = new FloodgateClient({ url: silent.url, ...quiet, timeoutMs: 300, failOpen: false });
  const started = Date.now();
  const decision = await client.check({ user: 'u' });
  const elapsed = Date.now() - started;
  assert.equal(silent.accepted(), 1, 'the request reached the stub');
  assert.equal(decision.allowed, false);
  assert.equal(decision.error.code, 'timeout');
  assert.ok(elapsed >= 290, `the timeout fired after ${elapsed} ms`);
  assert.equal(client.stats.failedClosed, 1);
  client.close();
  await silent.close();
});

/** A TCP sidecar that answers every request with `raw` bytes, then `after` ('stall' or 'close'). */
async function rawSidecar(raw, after) {
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    socket.once('data', () => {
      socket.write(raw);
      if (after === 'close') socket.end();
    });
  });
  server.sockets = new Set();
  server.on('connection', (socket) => server.sockets.add(socket));
  return { url: await listen(server), close: () => close(server) };
}

test('an answer that stops halfway: the check ends at the timeout; one cut short fails at once', async () => {
  const head = 'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"allowed":';
  const stalled = await rawSidecar(head, 'stall');
  const client = new FloodgateClient({ url: stalled.url, ...quiet, timeoutMs: 300, failOpen: false });
  const started = Date.now();
  const decision = await client.check({ user: 'u' });
  assert.equal(decision.error.code, 'timeout');
  assert.ok(Date.now() - started >= 290);
  client.close();
  await stalled.close();

  const cut = await rawSidecar(head, 'close');
  const other = new FloodgateClient({ url: cut.url, ...quiet });
  const cutShort = await other.check({ user: 'u' });
  assert.equal(cutShort.failed, true);
  assert.equal(cutShort.error.code, 'unreachable');
  other.close();
  await cut.close();
});

test('an answer over 1 MiB is not floodgate\'s: bad_response', async () => {
  const stub = await stubSidecar(() => ({ status: 200, body: { allowed: true, statuses: [], padding: 'x'.repeat(2 * 1024 * 1024) } }));
  const client = new FloodgateClient({ url: stub.url, ...quiet });
  const decision = await client.check({ user: 'u' });
  assert.equal(decision.failed, true);
  assert.equal(decision.error.code, 'bad_response');
  client.close();
  await stub.close();
});

test('maxWaitMs extends the timeout by the wait', async () => {
  const silent = await silentSidecar();
  const client = new FloodgateClient({ url: silent.url, ...quiet, timeoutMs: 100 });
  const started = Date.now();
  const decision = await client.check({ user: 'u' }, { maxWaitMs: 400 });
  const elapsed = Date.now() - started;
  assert.equal(decision.error.code, 'timeout');
  assert.ok(elapsed >= 490, `waited ${elapsed} ms: timeoutMs + maxWaitMs`);
  client.close();
  await silent.close();
});

test('a huge maxWaitMs does not overflow the timer into an instant timeout', async () => {
  const stub = await stubSidecar(() => ({ status: 200, delayMs: 50, body: { allowed: true, statuses: [] } }));
  const client = new FloodgateClient({ url: stub.url, ...quiet });
  const decision = await client.check({ user: 'u' }, { maxWaitMs: 2 ** 40 });
  assert.equal(decision.failed, false, `${decision.error}`);
  assert.equal(stub.requests[0].body.max_wait_ms, 2 ** 40);
  client.close();
  await stub.close();
});

test('5xx, non-JSON and 400 answers are failures with their code', async () => {
  const answers = [
    { status: 503, body: { error: 'store unavailable' }, code: 'server_error' },
    { status: 200, body: 'not json', code: 'bad_response' },
    { status: 200, body: { ok: true }, code: 'bad_response' },
    { status: 400, body: { error: 'attribute value over 256 bytes' }, code: 'rejected' },
  ];
  for (const answer of answers) {
    const stub = await stubSidecar(() => answer);
    const client = new FloodgateClient({ url: stub.url, ...quiet });
    const decision = await client.check({ user: 'u' });
    assert.equal(decision.allowed, true, answer.code);
    assert.equal(decision.failed, true);
    assert.equal(decision.error.code, answer.code);
    assert.equal(decision.error.status, answer.status);
    assert.equal(client.stats.failedOpen, 1);
    client.close();
    await stub.close();
  }
});

test('failures are logged at most once per interval; onError sees each; a throwing hook is harmless', async () => {
  const logger = recordingLogger();
  let seen = 0;
  const client = new FloodgateClient({
    url: await deadUrl(),
    logger,
    logIntervalMs: 60_000,
    onError: () => {
      seen += 1;
      throw new Error('hook bug');
    },
  });
  for (let i = 0; i < 5; i += 1) assert.equal((await client.check({ user: 'u' })).allowed, true);
  assert.equal(seen, 5);
  assert.equal(logger.lines.length, 1);
  assert.equal(client.stats.failures, 5);

  const asFunction = [];
  const withFunction = new FloodgateClient({ url: await deadUrl(), logger: (line) => asFunction.push(line) });
  await withFunction.check({ user: 'u' });
  await withFunction.check({ user: 'u' });
  assert.equal(asFunction.length, 1);

  const everyTime = recordingLogger();
  const chatty = new FloodgateClient({ url: await deadUrl(), logger: everyTime, logIntervalMs: 0 });
  await chatty.check({ user: 'u' });
  await chatty.check({ user: 'u' });
  assert.equal(everyTime.lines.length, 2);
});

test('by default failures go to console.warn, at most once per 10 s', async (t) => {
  const warned = [];
  t.mock.method(console, 'warn', (line) => warned.push(line));
  const client = new FloodgateClient({ url: await deadUrl() });
  assert.equal(client.logIntervalMs, 10_000);
  for (let i = 0; i < 3; i += 1) await client.check({ user: 'u' });
  assert.equal(warned.length, 1);
  assert.match(warned[0], /^floodgate: .*failing open$/);
});

test('the new answer fields: deny_status, settlement, waited_ms', async () => {
  const stub = await stubSidecar(() => ({
    status: 429,
    headers: { 'retry-after': '3', ratelimit: '"gpu";r=0;t=3', 'ratelimit-policy': '"gpu";q=1;w=60' },
    body: {
      allowed: false, policy: 'gpu', limit: 1, remaining: 0, reset_after_ms: 3000, retry_after_ms: 3000,
      waited_ms: 250, deny_status: 503, statuses: [],
    },
  }));
  const client = new FloodgateClient({ url: stub.url, ...quiet });
  const decision = await client.check({ user: 'u' }, { maxWaitMs: 500, reserve: true, hits: 7 });
  assert.deepEqual(stub.requests[0].body, { attributes: { user: 'u' }, hits: 7, reserve: true, max_wait_ms: 500 });
  assert.equal(decision.status, 503);
  assert.equal(decision.denyStatus, 503);
  assert.equal(decision.waitedMs, 250);
  assert.deepEqual(decision.headers, { 'retry-after': '3', ratelimit: '"gpu";r=0;t=3', 'ratelimit-policy': '"gpu";q=1;w=60' });
  client.close();
  await stub.close();

  const nonsense = await stubSidecar(() => ({
    status: 429, body: { allowed: false, policy: 'p', deny_status: 200, statuses: [] },
  }));
  const other = new FloodgateClient({ url: nonsense.url, ...quiet });
  assert.equal((await other.check({ user: 'u' })).status, 429, 'a deny_status that is not 4xx/5xx is ignored');
  other.close();
  await nonsense.close();
});

test('reserve returns a settlement; settle sends it with the actual cost', async () => {
  const stub = await stubSidecar((path, body) => {
    if (path === '/v1/check') {
      return { status: 200, body: { allowed: true, policy: 'tokens', limit: 1000, remaining: 500, settlement: 's-1', waited_ms: 0, statuses: [] } };
    }
    if (body.settlement === 's-1') return { status: 200, body: { settled: true, charged: -200 } };
    return { status: 409, body: { error: 'settlement already settled or expired' } };
  });
  const errors = [];
  const client = new FloodgateClient({ url: stub.url, onError: (err) => errors.push(err), ...quiet });
  const decision = await client.check({ user: 'u' }, { reserve: true, hits: 500 });
  assert.equal(decision.settlement, 's-1');
  const settled = await client.settle(decision.settlement, 300);
  assert.deepEqual(stub.requests[1], { path: '/v1/settle', body: { settlement: 's-1', actual: 300 } });
  assert.equal(settled.settled, true);
  assert.equal(settled.charged, -200);
  const again = await client.settle('s-2', 1);
  assert.equal(again.settled, false);
  assert.equal(again.status, 409);
  assert.equal(again.error.code, 'rejected');
  assert.match(again.error.message, /already settled/);
  assert.equal(errors.length, 1);
  assert.equal(client.stats.settles, 1);
  assert.equal(client.stats.failures, 1);
  client.close();
  await stub.close();
});

test('release and settle against a dead sidecar resolve false, counted', async () => {
  const client = new FloodgateClient({ url: await deadUrl(), ...quiet });
  assert.equal(await client.release('p:k/1/1'), false);
  assert.equal((await client.settle('s', 1)).settled, false);
  assert.equal(client.stats.failures, 2);
  assert.equal(client.stats.failedOpen, 0, 'only checks fail open or closed');
});

test('release and settle to a sidecar that never answers end at releaseTimeoutMs', async () => {
  const silent = await silentSidecar();
  const errors = [];
  const client = new FloodgateClient({ url: silent.url, ...quiet, releaseTimeoutMs: 150, onError: (err) => errors.push(err) });
  assert.equal(await client.release('p:k/1/1'), false);
  assert.equal((await client.settle('s', 1)).settled, false);
  assert.deepEqual(errors.map((err) => [err.op, err.code]), [['release', 'timeout'], ['settle', 'timeout']]);
  client.close();
  await silent.close();
});

test('invalid arguments are rejected before anything is sent', async () => {
  const stub = await stubSidecar(() => ({ status: 500, body: {} }));
  const client = new FloodgateClient({ url: stub.url, ...quiet });
  await assert.rejects(client.check([]), TypeError);
  await assert.rejects(client.check({ user: { nested: true } }), TypeError);
  await assert.rejects(client.check({ user: 'u' }, { hits: -1 }), TypeError);
  await assert.rejects(client.check({ user: 'u' }, { hits: 1.5 }), TypeError);
  await assert.rejects(client.check({ user: 'u' }, { maxWaitMs: -5 }), TypeError);
  await assert.rejects(client.release(''), TypeError);
  await assert.rejects(client.settle('s', -1), TypeError);
  assert.throws(() => new FloodgateClient({ url: 'ftp://x' }), TypeError);
  assert.throws(() => new FloodgateClient({ timeoutMs: 0 }), TypeError);
  assert.equal(stub.requests.length, 0);
  assert.equal(client.stats.checks, 0);
  client.close();
  await stub.close();
});

test('null and undefined attributes are dropped, numbers become strings', async () => {
  const stub = await stubSidecar(() => ({ status: 200, body: { allowed: true, statuses: [] } }));
  const client = new FloodgateClient({ url: stub.url, ...quiet });
  await client.check({ user: 'u', ip: undefined, tenant: null, plan: 3 });
  assert.deepEqual(stub.requests[0].body, { attributes: { user: 'u', plan: '3' } });
  client.close();
  await stub.close();
});
