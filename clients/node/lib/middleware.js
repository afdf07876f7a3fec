'use strict';

// What the Express and Fastify middleware share: the attributes of a
// request, the check, the lease held until the response ends, the headers
// and the denial.

const { createHash } = require('node:crypto');
const { FloodgateClient } = require('./client');

/** floodgate refuses longer attribute values. */
const MAX_VALUE_BYTES = 256;
// Control characters (C0, DEL, C1): floodgate refuses them in values.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** user (from the `x-user-id` header), ip, method and path of a request. */
function defaultAttributes(req, userHeader = 'x-user-id') {
  const url = req.originalUrl || req.url || '/';
  const attributes = {
    ip: req.ip || (req.socket && req.socket.remoteAddress) || undefined,
    method: req.method,
    path: url.split('?')[0],
  };
  const user = req.headers && req.headers[userHeader];
  if (typeof user === 'string' && user !== '') attributes.user = user;
  return attributes;
}

/**
 * A value floodgate accepts: values over 256 bytes or with control
 * characters (a long path, a forged user header) are replaced by their
 * SHA-256, so a client cannot make the check fail by sending them.
 */
function safeValue(value) {
  if (Buffer.byteLength(value) <= MAX_VALUE_BYTES && !CONTROL.test(value)) return value;
  return `sha256:${createHash('sha256').update(value).digest('hex')}`;
}

/** The per-request parts of the middleware options, resolved once. */
function createCore(options = {}) {
  if (options === null || typeof options !== 'object') throw new TypeError('floodgate: options must be an object');
  for (const name of ['attributes', 'endpoint', 'skip']) {
    if (options[name] !== undefined && typeof options[name] !== 'function') {
      throw new TypeError(`floodgate: ${name} must be a function of the request`);
    }
  }
  const client = options.client || new FloodgateClient(options);
  const userHeader = (options.userHeader || 'x-user-id').toLowerCase();
  const toAttributes = options.attributes || ((req) => defaultAttributes(req, userHeader));
  const perRequest = (value, req) => (typeof value === 'function' ? value(req) : value);

  function attributesOf(req) {
    const raw = { ...toAttributes(req) };
    if (options.endpoint) {
      const endpoint = options.endpoint(req);
      if (endpoint) raw.endpoint = endpoint;
    }
    const attributes = {};
    for (const [name, value] of Object.entries(raw)) {
      if (value === undefined || value === null || value === '') continue;
      attributes[name] = safeValue(String(value));
    }
    return attributes;
  }

  /** Checks one request; resolves to the decision (never rejects for floodgate). */
  function decide(req) {
    return client.check(attributesOf(req), {
      hits: perRequest(options.hits, req),
      reserve: Boolean(perRequest(options.reserve, req)),
      maxWaitMs: perRequest(options.maxWaitMs, req),
    });
  }

  /** Whether the app's `skip(req)` exempts this request from checks. */
  const skipped = (req) => Boolean(options.skip && options.skip(req));

  return { client, decide, skipped };
}

/**
 * Releases a lease exactly once, when the response has finished or the
 * client has gone (`res` is Node's ServerResponse). A lease that arrives
 * after the client left is released at once.
 */
function holdLease(client, res) {
  let lease = null;
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    if (lease) client.release(lease);
    lease = null;
  };
  // A client that left before the middleware ran: its close has happened.
  if (res.destroyed) ended = true;
  res.once('finish', end);
  res.once('close', end);
  return {
    get ended() {
      return ended;
    },
    hold(token) {
      if (!token) return;
      if (ended) client.release(token);
      else lease = token;
    },
  };
}

/** What the app sees as `req.floodgate`. */
function requestDecision(client, decision) {
  const seen = { ...decision };
  if (decision.settlement) seen.settle = (actual) => client.settle(decision.settlement, actual);
  return seen;
}

/** The body of a denial, serialized. */
function denialBody(decision) {
  return JSON.stringify(decision.body === null ? { error: 'rate limited' } : decision.body);
}

module.exports = { createCore, holdLease, requestDecision, denialBody, defaultAttributes, safeValue };
