'use strict';

// The floodgate client: check, peek, release, settle over HTTP keep-alive.
// None of its calls rejects because of the sidecar: a check floodgate
// cannot answer in time is allowed (failOpen) or denied with 503, counted
// in `stats`, reported to `onError` and logged at most once per interval.

const { Transport } = require('./transport');
const { FloodgateError } = require('./errors');
const { checkDecision, failedDecision, throwForStatus, parseJson } = require('./decision');

const DEFAULT_URL = 'http://127.0.0.1:9720';
const MAX_HITS = 1_000_000_000;

class FloodgateClient {
  /** @param {import('../index').ClientOptions} [options] */
  constructor(options = {}) {
    if (options === null || typeof options !== 'object') throw new TypeError('floodgate: options must be an object');
    this.url = options.url === undefined ? DEFAULT_URL : String(options.url);
    this.timeoutMs = positiveInt(options.timeoutMs, 200, 'timeoutMs');
    this.releaseTimeoutMs = positiveInt(options.releaseTimeoutMs, 1000, 'releaseTimeoutMs');
    this.logIntervalMs = nonNegativeInt(options.logIntervalMs, 10_000, 'logIntervalMs');
    this.failOpen = options.failOpen === undefined ? true : Boolean(options.failOpen);
    if (options.onError !== undefined && typeof options.onError !== 'function') {
      throw new TypeError('floodgate: onError must be a function');
    }
    this.onError = options.onError;
    this.logger = options.logger === undefined ? console : options.logger;
    this.stats = {
      checks: 0,
      allowed: 0,
      denied: 0,
      failures: 0,
      failedOpen: 0,
      failedClosed: 0,
      releases: 0,
      settles: 0,
    };
    this._transport = new Transport(this.url, options.agent);
    this._lastLog = -Infinity;
    this._suppressed = 0;
  }

  /**
   * Asks floodgate whether a request with these attributes may proceed.
   * @returns {Promise<import('../index').Decision>} never rejected because
   *   of floodgate; rejected only for invalid arguments
   */
  async check(attributes, options = {}) {
    const payload = { attributes: normalizeAttributes(attributes) };
    const { hits, reserve, maxWaitMs } = options || {};
    if (hits !== undefined) payload.hits = checkInt(hits, 'hits', MAX_HITS);
    if (reserve) payload.reserve = true;
    let timeoutMs = this.timeoutMs;
    if (maxWaitMs !== undefined && maxWaitMs !== 0) {
      payload.max_wait_ms = checkInt(maxWaitMs, 'maxWaitMs', Number.MAX_SAFE_INTEGER);
      timeoutMs += payload.max_wait_ms;
    }
    this.stats.checks += 1;
    let decision;
    try {
      decision = checkDecision(await this._transport.post('/v1/check', payload, timeoutMs, 'check'));
    } catch (err) {
      return this._failCheck(err);
    }
    if (decision.allowed) this.stats.allowed += 1;
    else this.stats.denied += 1;
    return decision;
  }

  /** A check with hits 0: the current state, charging nothing. */
  peek(attributes) {
    return this.check(attributes, { hits: 0 });
  }

  /**
   * Releases a concurrency lease (several may be joined by `,`).
   * @returns {Promise<boolean>} whether floodgate released it; false after
   *   a failure (counted and reported; the lease lapses at its timeout)
   */
  async release(lease) {
    if (typeof lease !== 'string' || lease === '') throw new TypeError('floodgate: lease must be a non-empty string');
    try {
      const answer = await this._transport.post('/v1/release', { lease }, this.releaseTimeoutMs, 'release');
      throwForStatus(answer, 'release');
    } catch (err) {
      this._fail(err);
      return false;
    }
    this.stats.releases += 1;
    return true;
  }

  /**
   * Settles a reservation with its actual cost.
   * @returns {Promise<import('../index').SettleResult>} `{settled: true, ...}`
   *   or `{settled: false, error}` (a forged or used id, floodgate
   *   unreachable: counted and reported)
   */
  async settle(settlement, actual) {
    if (typeof settlement !== 'string' || settlement === '') {
      throw new TypeError('floodgate: settlement must be a non-empty string');
    }
    const cost = checkInt(actual, 'actual', Number.MAX_SAFE_INTEGER);
    let body;
    try {
      const answer = await this._transport.post('/v1/settle', { settlement, actual: cost }, this.releaseTimeoutMs, 'settle');
      throwForStatus(answer, 'settle');
      body = parseJson(answer, 'settle');
    } catch (err) {
      this._fail(err);
      return { settled: false, status: err.status, error: err };
    }
    this.stats.settles += 1;
    return { ...(body && typeof body === 'object' ? body : {}), settled: true, status: 200, error: null };
  }

  /** Closes the kept-alive connections to floodgate. */
  close() {
    this._transport.close();
  }

  _failCheck(err) {
    this._fail(err);
    if (this.failOpen) this.stats.failedOpen += 1;
    else this.stats.failedClosed += 1;
    return failedDecision(err, this.failOpen);
  }

  _fail(err) {
    const error = err instanceof FloodgateError ? err : new FloodgateError('unreachable', String(err), { cause: err });
    this.stats.failures += 1;
    if (this.onError) {
      try {
        this.onError(error);
      } catch {
        // A throwing hook must not turn a failure into a hung request.
      }
    }
    this._log(error);
  }

  _log(error) {
    if (!this.logger) return;
    const now = Date.now();
    if (now - this._lastLog < this.logIntervalMs) {
      this._suppressed += 1;
      return;
    }
    const more = this._suppressed > 0 ? ` (and ${this._suppressed} more failures since the last message)` : '';
    const then = error.op === 'check' ? `; failing ${this.failOpen ? 'open' : 'closed'}` : '';
    const message = `floodgate: ${error.message}${then}${more}`;
    this._lastLog = now;
    this._suppressed = 0;
    try {
      if (typeof this.logger === 'function') this.logger(message);
      else this.logger.warn(message);
    } catch {
      // Logging must not break a request either.
    }
  }
}

/** Drops null/undefined values and turns numbers and booleans into strings. */
function normalizeAttributes(attributes) {
  if (attributes === null || typeof attributes !== 'object' || Array.isArray(attributes)) {
    throw new TypeError('floodgate: attributes must be an object of strings');
  }
  const out = {};
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null) continue;
    if (typeof value === 'string') out[name] = value;
    else if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') out[name] = String(value);
    else throw new TypeError(`floodgate: attribute ${JSON.stringify(name)} must be a string`);
  }
  return out;
}

function checkInt(value, name, max) {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new TypeError(`floodgate: ${name} must be an integer from 0 to ${max}`);
  }
  return value;
}

function positiveInt(value, fallback, name) {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) throw new TypeError(`floodgate: ${name} must be a positive integer`);
  return value;
}

function nonNegativeInt(value, fallback, name) {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 0) throw new TypeError(`floodgate: ${name} must be an integer ≥ 0`);
  return value;
}

module.exports = { FloodgateClient, DEFAULT_URL };
