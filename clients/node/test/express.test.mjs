// The Express middleware in a real Express app.

import http from 'node:http';
import express from 'express';
import { floodgateExpress } from '@floodgate/client';
import { appSuite } from './app-suite.mjs';
import { listen, close } from './helpers.mjs';

async function makeExpressApp(options, routes) {
  const app = express();
  const middleware = floodgateExpress(options);
  app.use(middleware);
  for (const [path, handler] of Object.entries(routes)) {
    app.get(path, async (req, res) => {
      res.type('text/plain').send(await handler(req));
    });
  }
  const server = http.createServer(app);
  const url = await listen(server);
  return {
    url,
    client: middleware.client,
    async close() {
      middleware.client.close();
      await close(server);
    },
  };
}

appSuite('express', makeExpressApp);
