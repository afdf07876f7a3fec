'use strict';

// floodgate's answers → the objects the client returns.

const { FloodgateError } = require('./errors');

/** Response headers floodgate sets on /v1/check that an app passes on. */
function rateLimitHeaders(headers) {
  const out = {};
  for (const [name, value] of Object.entries(headers)) {
    if (name === 'retry-after' || name.startsWith('ratelimit') || name.startsWith('x-ratelimit-')) {
      out[name] = Array.isArray(value) ? value.join(', ') : value;
    }
  }
  return out;
}

/** The HTTP status an app answers a denied request with. */
function denyStatusOf(body) {
  const status = body.deny_status;
  return Number.isInteger(status) && status >= 400 && status <= 599 ? status : 429;
}

function parseJson(answer, op) {
  try {
    return JSON.parse(answer.text);
  } catch {
    return failure(answer, op, 'bad_response', 'an answer that is not JSON');
  }
}

function failure(answer, op, code, what, body) {
  throw new FloodgateError(code, `floodgate answered ${op} with ${answer.status}: ${what}`, {
    op,
    status: answer.status,
    body,
  });
}

/** Throws a FloodgateError for a 4xx/5xx answer (other than a denial). */
function throwForStatus(answer, op) {
  if (answer.status >= 500) failure(answer, op, 'server_error', answer.text.slice(0, 200));
  if (answer.status >= 400) {
    let body;
    try {
      body = JSON.parse(answer.text);
    } catch {
      body = undefined;
    }
    const reason = body && typeof body.error === 'string' ? body.error : answer.text.slice(0, 200);
    failure(answer, op, 'rejected', reason, body);
  }
}

/** A /v1/check answer (200 allowed, 429 denied) → a decision. */
function checkDecision(answer) {
  if (answer.status !== 429) throwForStatus(answer, 'check');
  const body = parseJson(answer, 'check');
  if (!body || typeof body !== 'object' || typeof body.allowed !== 'boolean') {
    failure(answer, 'check', 'bad_response', 'no "allowed" in the answer');
  }
  return {
    allowed: body.allowed,
    failed: false,
    status: body.allowed ? 200 : denyStatusOf(body),
    policy: typeof body.policy === 'string' ? body.policy : '',
    limit: numberOr(body.limit, 0),
    remaining: numberOr(body.remaining, 0),
    resetAfterMs: numberOr(body.reset_after_ms, 0),
    retryAfterMs: numberOr(body.retry_after_ms, 0),
    waitedMs: numberOr(body.waited_ms, 0),
    denyStatus: Number.isInteger(body.deny_status) ? body.deny_status : null,
    lease: nonEmpty(body.lease),
    settlement: nonEmpty(body.settlement),
    statuses: Array.isArray(body.statuses) ? body.statuses : [],
    headers: rateLimitHeaders(answer.headers),
    body,
    error: null,
  };
}

/** The decision when floodgate could not be asked. */
function failedDecision(error, failOpen) {
  return {
    allowed: failOpen,
    failed: true,
    status: failOpen ? 200 : 503,
    policy: '',
    limit: 0,
    remaining: 0,
    resetAfterMs: 0,
    retryAfterMs: failOpen ? 0 : 1000,
    waitedMs: 0,
    denyStatus: null,
    lease: null,
    settlement: null,
    statuses: [],
    headers: failOpen ? {} : { 'retry-after': '1' },
    body: failOpen ? null : { error: 'rate limiter unavailable' },
    error,
  };
}

function numberOr(value, fallback) {
  return typeof value === 'number' && Number.isFinite(value) ? value : fallback;
}

function nonEmpty(value) {
  return typeof value === 'string' && value !== '' ? value : null;
}

module.exports = { checkDecision, failedDecision, throwForStatus, parseJson, rateLimitHeaders };
