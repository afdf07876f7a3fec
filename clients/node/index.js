'use strict';

// @floodgate/client: a client and Express/Fastify middleware for the
// floodgate rate-limiting sidecar. CommonJS; index.mjs re-exports it for
// `import`.

const { FloodgateClient, DEFAULT_URL } = require('./lib/client');
const { FloodgateError } = require('./lib/errors');
const { floodgateExpress } = require('./lib/express');
const { floodgateFastify } = require('./lib/fastify');
const { defaultAttributes, safeValue } = require('./lib/middleware');

/** A new client (same as `new FloodgateClient(options)`). */
function createClient(options) {
  return new FloodgateClient(options);
}

module.exports = {
  FloodgateClient,
  FloodgateError,
  createClient,
  floodgateExpress,
  // The name examples/express has always used.
  floodgate: floodgateExpress,
  floodgateFastify,
  defaultAttributes,
  safeValue,
  DEFAULT_URL,
};
