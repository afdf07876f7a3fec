// reserve/settle, max_wait_ms/waited_ms and deny_status against a real
// floodgate that has them (`npm run test:new-fields`). Each feature gets
// its own floodgate with only its policy (settings `settle = true`,
// `deny_status`, `max_wait`), so each part passes as soon as the server
// has it.

import { describe, test as nodeTest, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import express from 'express';
import { FloodgateClient, floodgateExpress } from '@floodgate/client';
import { startFloodgate, listen, close, request, eventually } from './helpers.mjs';

const test = (title, body) => nodeTest(title, { timeout: 20_000 }, body);

/** A floodgate with `policy`, a client, and an Express app whose routes `mount(app, limited)` adds. */
function withServers(policy, mount) {
  const env = {};
  before(async () => {
    env.floodgate = await startFloodgate(policy);
    env.client = new FloodgateClient({ url: env.floodgate.url, logger: false, timeoutMs: 5000 });
    const app = express();
    const endpoint = (req) => req.path.split('/')[1];
    mount(app, (options) => floodgateExpress({ client: env.client, endpoint, ...options }));
    env.server = http.createServer(app);
    env.url = await listen(env.server);
  });
  after(async () => {
    if (env.client) env.client.close();
    if (env.server) await close(env.server);
    if (env.floodgate) await env.floodgate.stop();
  });
  return env;
}

describe('reserve and settle', () => {
  const env = withServers(
    `[[policy]]
name = "tokens"
match = { endpoint = "tokens" }
key = ["user"]
limit = 1000
window = "1h"
settle = true
`,
    (app, limited) => {
      app.get('/tokens', limited({ reserve: true, hits: 500 }), async (req, res) => {
        res.json({ settlement: req.floodgate.settlement, result: await req.floodgate.settle(Number(req.query.actual)) });
      });
    },
  );

  test('client: reserve returns a settlement; settle charges the actual cost; reused and forged ids are refused', async () => {
    const { client } = env;
    const attributes = { endpoint: 'tokens', user: 'c-settle' };
    const reserved = await client.check(attributes, { reserve: true, hits: 500 });
    assert.equal(reserved.failed, false, `${reserved.error}`);
    assert.equal(reserved.allowed, true);
    assert.equal(reserved.remaining, 500);
    assert.ok(reserved.settlement, 'a settlement id');
    assert.equal(reserved.waitedMs, 0);
    const settled = await client.settle(reserved.settlement, 100);
    assert.equal(settled.settled, true);
    assert.equal(settled.status, 200);
    assert.equal((await client.peek(attributes)).remaining, 900, 'charged the actual 100, not the estimate');
    const again = await client.settle(reserved.settlement, 100);
    assert.equal(again.settled, false);
    assert.equal(again.status, 409);
    assert.equal(again.error.code, 'rejected');
    const forged = await client.settle('not-a-settlement', 1);
    assert.equal(forged.settled, false);
    assert.equal(forged.status, 400);
    assert.equal((await client.peek(attributes)).remaining, 900, 'refused settles change nothing');
  });

  test('express: req.floodgate.settle(actual) from a real app', async () => {
    const res = await request(`${env.url}/tokens?actual=700`, { headers: { 'x-user-id': 'e-settle' } });
    assert.equal(res.status, 200);
    const body = res.json();
    assert.ok(body.settlement);
    assert.equal(body.result.settled, true);
    assert.equal((await env.client.peek({ endpoint: 'tokens', user: 'e-settle' })).remaining, 300);
  });
});

describe('deny_status', () => {
  const env = withServers(
    `[[policy]]
name = "gpu"
match = { endpoint = "gpu" }
key = ["user"]
algorithm = "fixed_window"
limit = 1
window = "1h"
deny_status = 503
`,
    (app, limited) => {
      app.get('/gpu', limited({}), (req, res) => res.send('ok'));
    },
  );

  test("express: a denial by a policy with deny_status = 503 answers 503 with floodgate's headers and body", async () => {
    const headers = { 'x-user-id': 'e-gpu' };
    assert.equal((await request(`${env.url}/gpu`, { headers })).status, 200);
    const denied = await request(`${env.url}/gpu`, { headers });
    assert.equal(denied.status, 503);
    assert.ok(Number(denied.headers['retry-after']) >= 1);
    assert.match(denied.headers.ratelimit, /"gpu";r=0/);
    const body = denied.json();
    assert.equal(body.deny_status, 503);
    assert.equal(body.policy, 'gpu');
    assert.equal(body.allowed, false);
    const decision = await env.client.check({ endpoint: 'gpu', user: 'e-gpu' });
    assert.equal(decision.status, 503);
    assert.equal(decision.denyStatus, 503);
  });
});

describe('max_wait', () => {
  const waiting = [];
  const env = withServers(
    `[[policy]]
name = "queue"
match = { endpoint = "queue" }
key = ["user"]
algorithm = "concurrency"
limit = 1
max_wait = "5s"
`,
    (app, limited) => {
      app.get('/queue', limited({ maxWaitMs: 4000 }), async (req, res) => {
        await new Promise((resolve) => waiting.push(resolve));
        res.json({ waitedMs: req.floodgate.waitedMs });
      });
    },
  );
  after(() => waiting.splice(0).forEach((resolve) => resolve()));

  test('express: with maxWaitMs a request waits for the slot instead of being denied', async () => {
    const headers = { 'x-user-id': 'e-queue' };
    const first = request(`${env.url}/queue`, { headers });
    await eventually(() => waiting.length === 1, 5000, 'the first request holds the slot');
    const second = request(`${env.url}/queue`, { headers });
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(waiting.length, 1, 'the second waits in floodgate, not in the app');
    waiting.shift()();
    const firstAnswer = await first;
    assert.equal(firstAnswer.status, 200);
    assert.equal(firstAnswer.json().waitedMs, 0);
    await eventually(() => waiting.length === 1, 5000, 'the second gets the slot once the first released it');
    waiting.shift()();
    const served = await second;
    assert.equal(served.status, 200);
    assert.ok(served.json().waitedMs > 0, `waited ${served.json().waitedMs} ms`);
  });
});
