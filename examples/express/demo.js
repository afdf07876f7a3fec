// A small app using the middleware. With Express installed it would be
// `app.use(floodgate(...))`; this demo uses Node's http module so it runs
// with no dependencies:
//
//   FLOODGATE_URL=http://127.0.0.1:9720 PORT=3000 node examples/express/demo.js
'use strict';

const http = require('node:http');
const { floodgate } = require('./floodgate');

const limit = floodgate({
  url: process.env.FLOODGATE_URL || 'http://127.0.0.1:9720',
  // Endpoint classes, as in config/floodgate.toml.
  endpoint: (req) => {
    const path = req.url.split('?')[0];
    if (req.method === 'POST' && path.startsWith('/api/chat/')) return 'ai';
    if (req.method === 'POST' && path.startsWith('/api/llm/')) return 'llm';
    if (path.startsWith('/auth/')) return 'auth';
    if (path.startsWith('/api/')) return 'api';
    return undefined;
  },
  // LLM calls reserve an estimate of their tokens, settled below.
  estimate: (req) => (req.url.startsWith('/api/llm/') ? Number(req.headers['x-estimate'] || 100) : undefined),
});

const server = http.createServer((req, res) => {
  limit(req, res, async () => {
    if (req.floodgate.settlement) {
      // "Call the model", then settle the tokens it reported using.
      const settled = await req.floodgate.settle(Number(req.headers['x-actual'] || 0));
      res.setHeader('content-type', 'application/json');
      return res.end(JSON.stringify(settled));
    }
    res.setHeader('content-type', 'text/plain');
    res.end('hello from the app\n');
  });
});

server.listen(Number(process.env.PORT || 3000), process.env.HOST || '127.0.0.1', () => {
  console.log(`listening on ${server.address().port}`);
});
