'use strict';

// One JSON POST to floodgate over a kept-alive connection, bounded in time
// from the first byte sent to the last byte read: whatever the sidecar does
// (refuses, accepts and never answers, answers half), the promise settles
// within `timeoutMs`.

const http = require('node:http');
const https = require('node:https');
const { FloodgateError } = require('./errors');

/** Answers larger than this are not floodgate's. */
const MAX_ANSWER_BYTES = 1024 * 1024;
/** The longest delay setTimeout takes (a larger one would fire at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;

class Transport {
  /**
   * @param {string} url floodgate's HTTP listener, e.g. http://127.0.0.1:9720
   * @param {import('node:http').Agent} [agent] a caller-provided agent
   */
  constructor(url, agent) {
    let parsed;
    try {
      parsed = new URL(url);
    } catch {
      throw new TypeError(`floodgate: url ${JSON.stringify(url)} is not a URL`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new TypeError(`floodgate: url must be http: or https:, not ${parsed.protocol}`);
    }
    this.module = parsed.protocol === 'https:' ? https : http;
    this.agent = agent || new this.module.Agent({ keepAlive: true });
    this.hostname = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
    this.port = parsed.port || (parsed.protocol === 'https:' ? 443 : 80);
    this.base = parsed.pathname.replace(/\/+$/, '');
  }

  /**
   * POSTs `payload` as JSON to `path`.
   * @returns {Promise<{status: number, headers: object, text: string}>}
   *   rejected with a FloodgateError (`timeout` or `unreachable`)
   */
  post(path, payload, requestedMs, op) {
    const timeoutMs = Math.min(requestedMs, MAX_TIMER_MS);
    const data = Buffer.from(JSON.stringify(payload));
    const deadline = Date.now() + timeoutMs;
    return new Promise((resolve, reject) => {
      let timer = null;
      let current = null;
      let done = false;
      const finish = (err, value) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(value);
      };
      timer = setTimeout(() => {
        finish(new FloodgateError('timeout', `floodgate did not answer ${op} within ${timeoutMs} ms`, { op }));
        if (current) current.destroy();
      }, timeoutMs);
      const attempt = (retry) => {
        current = this._send(path, data, op, (err, value, reused) => {
          // A kept-alive connection the server closed while idle: the
          // request never reached it, so send it again on a fresh one.
          if (err && retry && reused && err.cause && err.cause.code === 'ECONNRESET' && Date.now() < deadline) {
            attempt(false);
            return;
          }
          finish(err, value);
        });
      };
      attempt(true);
    });
  }

  _send(path, data, op, callback) {
    let called = false;
    const once = (err, value, reused) => {
      if (called) return;
      called = true;
      callback(err, value, reused);
    };
    const req = this.module.request(
      {
        hostname: this.hostname,
        port: this.port,
        path: this.base + path,
        method: 'POST',
        agent: this.agent,
        headers: {
          'content-type': 'application/json',
          'content-length': data.length,
          accept: 'application/json',
        },
      },
      (res) => readAnswer(req, res, op, once),
    );
    req.on('error', (err) => {
      once(new FloodgateError('unreachable', `floodgate unreachable (${op}): ${err.message}`, { op, cause: err }), null, req.reusedSocket);
    });
    req.end(data);
    return req;
  }

  /** Closes the kept-alive connections (those of an agent passed in too). */
  close() {
    this.agent.destroy();
  }
}

function readAnswer(req, res, op, once) {
  const chunks = [];
  let size = 0;
  res.on('data', (chunk) => {
    size += chunk.length;
    if (size > MAX_ANSWER_BYTES) {
      once(new FloodgateError('bad_response', `floodgate's answer to ${op} is over ${MAX_ANSWER_BYTES} bytes`, { op }));
      req.destroy();
      return;
    }
    chunks.push(chunk);
  });
  res.on('end', () => {
    once(null, { status: res.statusCode, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') });
  });
  res.on('error', (err) => {
    once(new FloodgateError('unreachable', `floodgate's answer to ${op} was cut: ${err.message}`, { op, cause: err }));
  });
  res.on('close', () => {
    if (!res.complete) once(new FloodgateError('unreachable', `floodgate's answer to ${op} was cut`, { op }));
  });
}

module.exports = { Transport };
