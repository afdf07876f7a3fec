// floodgate middleware for Express (or any `(req, res, next)` framework),
// for apps that want to ask floodgate themselves. No dependencies: it uses
// Node's built-in fetch (Node 18+).
//
//   const { floodgate } = require('./floodgate');
//   app.use(floodgate({ url: 'http://127.0.0.1:9720' }));
//
// Every request becomes one POST /v1/check. Allowed: the RateLimit headers
// are copied onto the response and the request goes on. Denied: the
// deciding policy's deny_status (429 unless the policy sets another, such
// as 503) with Retry-After and a small JSON body. With `maxWaitMs`, a
// request floodgate would deny waits up to that long for its turn (within
// the policies' max_wait). A concurrency lease is released when
// the response ends. If floodgate cannot be reached within `timeoutMs`, the
// request goes on (`failOpen: true`, the default) or gets 503.

'use strict';

const COPIED = [
  'ratelimit-policy',
  'ratelimit',
  'retry-after',
  'x-ratelimit-limit',
  'x-ratelimit-remaining',
  'x-ratelimit-reset',
];

/** The attributes of a request: user (x-user-id), ip, method, path. */
function defaultAttributes(req) {
  const path = (req.originalUrl || req.url || '/').split('?')[0];
  const attributes = {
    ip: req.ip || (req.socket && req.socket.remoteAddress),
    method: req.method,
    path,
  };
  const user = req.headers['x-user-id'];
  if (typeof user === 'string' && user !== '') attributes.user = user;
  return attributes;
}

/**
 * @param {object} options
 * @param {string} [options.url] floodgate's HTTP listener
 * @param {(req) => object} [options.attributes] request → attributes
 * @param {(req) => string|undefined} [options.endpoint] request → endpoint class
 * @param {(req) => number} [options.hits] request → cost (default 1)
 * @param {number} [options.timeoutMs] per check (a wait comes on top)
 * @param {number} [options.maxWaitMs] how long a request may wait for its
 *   turn (default 0: denied at once)
 * @param {boolean} [options.failOpen] allow when floodgate is unreachable
 */
function floodgate(options = {}) {
  const url = (options.url || 'http://127.0.0.1:9720').replace(/\/$/, '');
  const toAttributes = options.attributes || defaultAttributes;
  const timeoutMs = options.timeoutMs || 250;
  const maxWaitMs = options.maxWaitMs || 0;
  const failOpen = options.failOpen !== false;

  return async function floodgateMiddleware(req, res, next) {
    const attributes = toAttributes(req);
    if (options.endpoint) {
      const endpoint = options.endpoint(req);
      if (endpoint) attributes.endpoint = endpoint;
    }
    const hits = options.hits ? options.hits(req) : 1;
    let response;
    let body;
    try {
      response = await fetch(`${url}/v1/check`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ attributes, hits, max_wait_ms: maxWaitMs }),
        signal: AbortSignal.timeout(timeoutMs + maxWaitMs),
      });
      body = await response.json();
    } catch (err) {
      if (failOpen) return next();
      res.statusCode = 503;
      res.setHeader('content-type', 'application/json');
      return res.end(JSON.stringify({ error: 'rate limiter unavailable' }));
    }
    for (const name of COPIED) {
      const value = response.headers.get(name);
      if (value) res.setHeader(name, value);
    }
    if (response.status === 429) {
      res.statusCode = body.deny_status || 429;
      res.setHeader('content-type', 'application/json');
      return res.end(
        JSON.stringify({ error: 'rate limited', policy: body.policy, retry_after_ms: body.retry_after_ms }),
      );
    }
    if (response.status !== 200) {
      // A 400 means this middleware built bad attributes: say so loudly.
      console.error(`floodgate: /v1/check answered ${response.status}: ${JSON.stringify(body)}`);
      return failOpen ? next() : res.writeHead(503).end();
    }
    if (body.lease) {
      res.on('close', () => {
        fetch(`${url}/v1/release`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ lease: body.lease }),
        }).catch(() => {});
      });
    }
    return next();
  };
}

module.exports = { floodgate, defaultAttributes };
