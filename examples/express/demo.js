// A small app using the floodgate middleware of @floodgate/client
// (clients/node). With Express it is `app.use(floodgateExpress(...))`; this
// demo uses Node's http module so it runs with nothing installed:
//
//   FLOODGATE_URL=http://127.0.0.1:9720 PORT=3000 node examples/express/demo.js
'use strict';

const http = require('node:http');
// In an app: `npm install @floodgate/client`, then require('@floodgate/client').
const { floodgateExpress } = require('../../clients/node');

const isLlm = (req) => req.method === 'POST' && req.url.startsWith('/api/llm/');

const limit = floodgateExpress({
  url: process.env.FLOODGATE_URL || 'http://127.0.0.1:9720',
  // Generous for a demo on a busy machine; the package's default is 200 ms.
  timeoutMs: Number(process.env.FLOODGATE_TIMEOUT_MS) || 1000,
  // How long a request may wait for its turn (policies with max_wait).
  maxWaitMs: Number(process.env.FLOODGATE_MAX_WAIT_MS || 0),
  // Endpoint classes, as in config/floodgate.toml.
  endpoint: (req) => {
    const path = req.url.split('?')[0];
    if (req.method === 'POST' && path.startsWith('/api/chat/')) return 'ai';
    if (isLlm(req)) return 'llm';
    if (path.startsWith('/auth/')) return 'auth';
    if (path.startsWith('/api/')) return 'api';
    return undefined;
  },
  // LLM calls reserve an estimate of their tokens, settled below.
  reserve: isLlm,
  hits: (req) => (isLlm(req) ? Number(req.headers['x-estimate'] || 100) : 1),
});

const server = http.createServer((req, res) => {
  limit(req, res, async (err) => {
    if (err) {
      res.statusCode = 500;
      res.end('internal error\n');
      return;
    }
    if (req.floodgate && req.floodgate.settlement) {
      // "Call the model", then settle the tokens it reported using.
      const settled = await req.floodgate.settle(Number(req.headers['x-actual'] || 0));
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(settled));
      return;
    }
    res.setHeader('content-type', 'text/plain');
    res.end('hello from the app\n');
  });
});

server.listen(Number(process.env.PORT || 3000), process.env.HOST || '127.0.0.1', () => {
  console.log(`listening on ${server.address().port}`);
});
