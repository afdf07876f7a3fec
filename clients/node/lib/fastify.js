'use strict';

// Fastify plugin: `fastify.register(floodgateFastify, { attributes: ... })`.
// It applies to every route of the instance it is registered on (and its
// children), like a plugin wrapped in fastify-plugin. It checks in the
// `onRequest` hook (before the body is read), or in `preHandler` with
// `hook: 'preHandler'` when attributes or hits come from the parsed body.

const { createCore, holdLease, requestDecision, denialBody } = require('./middleware');

/**
 * @param {object} fastify the Fastify instance
 * @param {import('../index').MiddlewareOptions} options
 * @param {(err?: Error) => void} done
 */
function floodgateFastify(fastify, options, done) {
  let core;
  try {
    core = createCore(options || {});
  } catch (err) {
    done(err);
    return;
  }
  const { client, decide, skipped } = core;
  const hook = (options && options.hook) || 'onRequest';
  if (hook !== 'onRequest' && hook !== 'preHandler') {
    done(new TypeError('floodgate: hook must be "onRequest" or "preHandler"'));
    return;
  }
  if (!fastify.hasRequestDecorator('floodgate')) fastify.decorateRequest('floodgate', null);
  if (!fastify.hasDecorator('floodgateClient')) fastify.decorate('floodgateClient', client);
  fastify.addHook(hook, (request, reply, next) => {
    let checking;
    try {
      if (skipped(request)) {
        next();
        return;
      }
      checking = decide(request);
    } catch (err) {
      next(err);
      return;
    }
    const lease = holdLease(client, reply.raw);
    checking.then((decision) => {
      lease.hold(decision.lease);
      request.floodgate = requestDecision(client, decision);
      if (lease.ended) return;
      reply.headers(decision.headers);
      if (!decision.allowed) {
        reply.code(decision.status).type('application/json; charset=utf-8').send(denialBody(decision));
        return;
      }
      next();
    }, next);
  });
  done();
}

// Hooks apply outside the plugin's own encapsulation context (what
// fastify-plugin does), so one registration covers the app's routes.
floodgateFastify[Symbol.for('skip-override')] = true;
floodgateFastify[Symbol.for('fastify.display-name')] = '@floodgate/client';
floodgateFastify[Symbol.for('plugin-meta')] = { name: '@floodgate/client', fastify: '>=4' };

module.exports = { floodgateFastify };
