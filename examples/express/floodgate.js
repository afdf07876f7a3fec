// floodgate middleware for Express (or any `(req, res, next)` framework),
// for apps that want to ask floodgate themselves. No dependencies: it uses
// Node's built-in fetch (Node 18+).
//
//   const { floodgate } = require('./floodgate');
//   app.use(floodgate({ url: 'http://127.0.0.1:9720' }));
//
// Every request becomes one POST /v1/check. Allowed: the RateLimit headers
// are copied onto the response and the request goes on. Denied: 429 with
// Retry-After and a small JSON body. A concurrency lease is released when
// the response ends. If floodgate cannot be reached within `timeoutMs`, the
// request goes on (`failOpen: true`, the default) or gets 503.
//
// Token budgets: with `estimate: (req) => number`, a request whose estimate
// is a number reserves it (`"reserve": true`) on the policies with
// `settle = true`; once the call's real cost is known, the handler calls
// `await req.floodgate.settle(actualCost)` (POST /v1/settle, once; it
// resolves to floodgate's answer, or null when there is nothing to settle
// or floodgate cannot be reached).

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
 * @param {(req) => number|undefined} [options.estimate] request → estimated
 *   cost to reserve and settle later (`req.floodgate.settle`); undefined:
 *   an ordinary check
 * @param {number} [options.timeoutMs] per check
 * @param {boolean} [options.failOpen] allow when floodgate is unreachable
 */
function floodgate(options = {}) {
  const url = (options.url || 'http://127.0.0.1:9720').replace(/\/$/, '');
  const toAttributes = options.attributes || defaultAttributes;
  const timeoutMs = options.timeoutMs || 250;
  const failOpen = options.failOpen !== false;

  return async function floodgateMiddleware(req, res, next) {
    const attributes = toAttributes(req);
    if (options.endpoint) {
      const endpoint = options.endpoint(req);
      if (endpoint) attributes.endpoint = endpoint;
    }
    const estimate = options.estimate ? options.estimate(req) : undefined;
    const reserve = typeof estimate === 'number';
    const hits = reserve ? estimate : options.hits ? options.hits(req) : 1;
    req.floodgate = { settlement: undefined, settle: async () => null };
    let response;
    let body;
    try {
      response = await fetch(`${url}/v1/check`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(reserve ? { attributes, hits, reserve } : { attributes, hits }),
        signal: AbortSignal.timeout(timeoutMs),
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
      res.statusCode = 429;
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
    if (body.settlement) req.floodgate = settler(url, body.settlement, timeoutMs);
    return next();
  };
}

/** `req.floodgate` of a reservation: `settle(actualCost)`, once. */
function settler(url, settlement, timeoutMs) {
  let settled = null;
  return {
    settlement,
    settle(actual) {
      if (settled) return settled;
      settled = fetch(`${url}/v1/settle`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ settlement, actual: Math.max(0, Math.round(Number(actual) || 0)) }),
        signal: AbortSignal.timeout(timeoutMs),
      })
        .then((r) => r.json())
        .catch(() => null);
      return settled;
    },
  };
}

module.exports = { floodgate, defaultAttributes };
