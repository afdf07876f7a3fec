'use strict';

/**
 * Why a call to floodgate failed. `code` is one of:
 * - `timeout`: no complete answer within the time allowed;
 * - `unreachable`: the connection failed or was cut;
 * - `server_error`: floodgate answered 5xx (e.g. 503, its store could not decide);
 * - `bad_response`: an answer that is not the JSON floodgate sends;
 * - `rejected`: floodgate refused the request (4xx: bad attributes, a forged
 *   or already used settlement id).
 */
class FloodgateError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {{op?: string, status?: number, body?: unknown, cause?: unknown}} [details]
   */
  constructor(code, message, details = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'FloodgateError';
    this.code = code;
    this.op = details.op;
    this.status = details.status;
    this.body = details.body;
  }
}

module.exports = { FloodgateError };
