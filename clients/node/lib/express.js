'use strict';

// Express middleware (also any `(req, res, next)` framework, or plain
// node:http): `app.use(floodgateExpress({ attributes: (req) => ({...}) }))`.

const { createCore, holdLease, requestDecision, denialBody } = require('./middleware');

/**
 * @param {import('../index').MiddlewareOptions} [options]
 * @returns {import('../index').ExpressMiddleware}
 */
function floodgateExpress(options = {}) {
  const { client, decide, skipped } = createCore(options);

  function floodgateMiddleware(req, res, next) {
    let checking;
    try {
      if (skipped(req)) {
        next();
        return;
      }
      checking = decide(req);
    } catch (err) {
      next(err);
      return;
    }
    const lease = holdLease(client, res);
    checking.then((decision) => {
      lease.hold(decision.lease);
      req.floodgate = requestDecision(client, decision);
      // The client left while floodgate was asked: nothing to answer.
      if (lease.ended) return;
      for (const [name, value] of Object.entries(decision.headers)) res.setHeader(name, value);
      if (!decision.allowed) {
        const body = denialBody(decision);
        res.statusCode = decision.status;
        res.setHeader('content-type', 'application/json; charset=utf-8');
        res.setHeader('content-length', Buffer.byteLength(body));
        res.end(body);
        return;
      }
      next();
    }, next);
  }

  floodgateMiddleware.client = client;
  return floodgateMiddleware;
}

module.exports = { floodgateExpress };
