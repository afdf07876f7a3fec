// Test helpers: a real floodgate on free loopback ports, stub sidecars that
// answer what a test needs (or never answer), and a small HTTP client.

import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import http from 'node:http';
import net from 'node:net';

const here = dirname(fileURLToPath(import.meta.url));

/** The floodgate binary: $FLOODGATE_BIN, or the workspace's debug build. */
export const FLOODGATE_BIN = process.env.FLOODGATE_BIN
  ? resolve(process.env.FLOODGATE_BIN)
  : resolve(here, '../../../target/debug/floodgate');

/**
 * Policies most tests use (they match on the `endpoint` attribute). The
 * window is an hour so that a few requests in a row never straddle a
 * window boundary.
 */
export const POLICIES = `
[[policy]]
name = "ai-per-user"
match = { endpoint = "ai" }
key = ["user"]
limit = 2
window = "1h"

[[policy]]
name = "one-at-a-time"
match = { endpoint = "slow" }
key = ["user"]
algorithm = "concurrency"
limit = 1
`;

/**
 * Starts `floodgate serve` with `policies` on free loopback ports.
 * @returns {Promise<{url: string, log: () => string, stop: () => Promise<void>}>}
 */
export async function startFloodgate(policies = POLICIES, server = '') {
  if (!existsSync(FLOODGATE_BIN)) {
    throw new Error(`${FLOODGATE_BIN} is missing: build it (cargo build --bin floodgate) or set FLOODGATE_BIN`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'floodgate-node-'));
  const config = join(dir, 'floodgate.toml');
  writeFileSync(config, `[server]\nhttp = "127.0.0.1:0"\ngrpc = "127.0.0.1:0"\n${server}\n${policies}`);
  const child = spawn(FLOODGATE_BIN, ['serve', '--config', config], {
    env: { ...process.env, RUST_LOG: 'info' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  const exited = new Promise((resolveExit) => child.once('exit', resolveExit));
  const started = new Promise((resolveAddress, reject) => {
    const timer = setTimeout(() => reject(new Error(`floodgate did not start; its log:\n${log}`)), 20_000);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      log += chunk;
      const found = /floodgate listening http=(\S+)/.exec(log);
      if (found) {
        clearTimeout(timer);
        resolveAddress(found[1]);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`floodgate exited with ${code}; its log:\n${log}`));
    });
  });
  let address;
  try {
    address = await started;
  } catch (err) {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    url: `http://${address}`,
    log: () => log,
    async stop() {
      child.kill('SIGKILL');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Listens on a free loopback port; resolves to the server's base URL. */
export function listen(server) {
  return new Promise((resolveUrl) => {
    server.listen(0, '127.0.0.1', () => resolveUrl(`http://127.0.0.1:${server.address().port}`));
  });
}

/** Closes a server and every connection it holds. */
export function close(server) {
  return new Promise((resolveClose) => {
    if (typeof server.closeAllConnections === 'function') server.closeAllConnections();
    for (const socket of server.sockets || []) socket.destroy();
    server.close(() => resolveClose());
  });
}

/** A stub floodgate: `answer(path, body)` → {status, headers, body, delayMs}. Records requests. */
export async function stubSidecar(answer) {
  const requests = [];
  const server = http.createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => (text += chunk));
    req.on('end', () => {
      const body = text ? JSON.parse(text) : null;
      requests.push({ path: req.url, body });
      const reply = answer(req.url, body);
      setTimeout(() => {
        res.writeHead(reply.status, { 'content-type': 'application/json', ...(reply.headers || {}) });
        res.end(typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body));
      }, reply.delayMs || 0);
    });
  });
  const url = await listen(server);
  return { url, requests, close: () => close(server) };
}

/** A TCP server that accepts connections and never answers. */
export async function silentSidecar() {
  const sockets = new Set();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
  });
  server.sockets = sockets;
  const url = await listen(server);
  return { url, accepted: () => sockets.size, close: () => close(server) };
}

/** A loopback URL where nothing listens (a port bound, then freed). */
export async function deadUrl() {
  const server = net.createServer();
  const url = await listen(server);
  await close(server);
  return url;
}

/**
 * One request to an app, on a fresh connection.
 * @returns {Promise<{status: number, headers: object, text: string, json: () => any}>}
 */
export function request(url, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolveResponse, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () =>
        resolveResponse({ status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Starts a request and leaves it open; `abort()` closes its connection. */
export function openRequest(url, headers = {}) {
  const req = http.request(url, { method: 'GET', headers, agent: false });
  req.on('error', () => {});
  req.end();
  return { abort: () => req.destroy() };
}

/** Polls `condition` (async) every 20 ms, up to `timeoutMs`. */
export async function eventually(condition, timeoutMs = 5000, what = 'condition') {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`${what} did not hold within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A logger that records what it is given. */
export function recordingLogger() {
  const lines = [];
  return { lines, warn: (line) => lines.push(line) };
}
