// The Fastify plugin in a real Fastify app.

import Fastify from 'fastify';
import { floodgateFastify } from '@floodgate/client';
import { appSuite } from './app-suite.mjs';

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
