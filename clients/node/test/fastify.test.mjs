// The Fastify plugin in a real Fastify app.

import Fastify from 'fastify';
import { floodgateFastify } from '@floodgate/client';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appSuite } from './app-suite.mjs';
import { startFloodgate, request } from './helpers.mjs';

async function makeFastifyApp(options, routes) {
  const app = Fastify();
  await app.register(floodgateFastify, options);
  for (const [path, handler] of Object.entries(routes)) {
    app.get(path, async (request, reply) => {
      reply.type('text/plain');
      return handler(request);
    });
  }
  await app.listen({ port: 0, host: '127.0.0.1' });
  return {
    url: `http://127.0.0.1:${app.server.address().port}`,
    client: app.floodgateClient,
    async close() {
      app.floodgateClient.close();
      app.server.closeAllConnections();
      await app.close();
    },
  };
}

appSuite('fastify', makeFastifyApp);

test("fastify: hook 'preHandler' checks after the body is parsed (hits from the body)", { timeout: 20_000 }, async () => {
  const floodgate = await startFloodgate();
  const app = Fastify();
  await app.register(floodgateFastify, {
    url: floodgate.url,
    hook: 'preHandler',
    logger: false,
    timeoutMs: 5000,
    attributes: (request) => ({ endpoint: 'ai', user: request.body.user }),
    hits: (request) => request.body.max_tokens,
  });
  app.post('/chat', async () => 'ok');
  await app.listen({ port: 0, host: '127.0.0.1' });
  const url = `http://127.0.0.1:${app.server.address().port}/chat`;
  const post = (body) => request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  try {
    const first = await post({ user: 'body-user', max_tokens: 2 });
    assert.equal(first.status, 200);
    assert.match(first.headers.ratelimit, /r=0/);
    const second = await post({ user: 'body-user', max_tokens: 1 });
    assert.equal(second.status, 429, JSON.stringify([second.text, app.floodgateClient.stats]));
    const wrong = Fastify();
    wrong.register(floodgateFastify, { hook: 'onSend' });
    await assert.rejects(wrong.ready(), /hook must be/);
  } finally {
    app.floodgateClient.close();
    await app.close();
    await floodgate.stop();
  }
});
