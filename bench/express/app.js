// The Express app scripts/bench-express drives: one small JSON route, run by
// Node's `cluster` on WORKERS workers (default 4) sharing one port.
//
//   LIMITER=none       no limiter (also the app behind floodgate's proxy)
//   LIMITER=erl        express-rate-limit with rate-limit-redis (REDIS_URL)
//   LIMITER=floodgate  the @floodgate/client package (clients/node; or the module at
//                      FLOODGATE_JS) asking FLOODGATE_URL
//
// One limit per user (the x-user-id header): LIMIT per minute, and
// BURST_LIMIT per minute on the path /burst (the accuracy check). The
// primary prints `app listening 127.0.0.1:<port> workers=<pid>,...` once
// every worker listens, and exits (ending the workers) on SIGTERM or when a
// worker dies.
'use strict';

const cluster = require('node:cluster');
const path = require('node:path');

const WORKERS = Number(process.env.WORKERS || 4);
const LIMITER = process.env.LIMITER || 'none';
const LIMIT = Number(process.env.LIMIT || 1000000);
const BURST_LIMIT = Number(process.env.BURST_LIMIT || 100);
const MIDDLEWARE = process.env.FLOODGATE_JS
  || path.join(__dirname, '..', '..', 'clients', 'node');

function primary() {
  const pids = [];
  let stopping = false;
  for (let i = 0; i < WORKERS; i++) cluster.fork();
  cluster.on('listening', (worker, address) => {
    pids.push(worker.process.pid);
    if (pids.length === WORKERS) {
      console.log(`app listening 127.0.0.1:${address.port} workers=${pids.join(',')}`);
    }
  });
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return;
    console.error(`worker ${worker.process.pid} exited (${signal || code})`);
    stop(1);
  });
  function stop(status) {
    stopping = true;
    for (const worker of Object.values(cluster.workers)) worker.process.kill('SIGTERM');
    setTimeout(() => process.exit(status), 200);
  }
  process.on('SIGTERM', () => stop(0));
  process.on('SIGINT', () => stop(0));
}

async function limiter() {
  if (LIMITER === 'none') return null;
  if (LIMITER === 'floodgate') {
    const mod = require(MIDDLEWARE);
    const floodgate = mod.floodgate || mod.default || mod;
    // Fail closed and wait long: a check that does not reach floodgate
    // must show up as an error in the run, never as a free request.
    return floodgate({ url: process.env.FLOODGATE_URL, timeoutMs: 5000, failOpen: false });
  }
  if (LIMITER !== 'erl') throw new Error(`LIMITER=${LIMITER}: none, erl or floodgate`);
  const { rateLimit } = require('express-rate-limit');
  const { RedisStore } = require('rate-limit-redis');
  const { createClient } = require('redis');
  const client = createClient({ url: process.env.REDIS_URL });
  client.on('error', (err) => console.error(`redis: ${err.message}`));
  await client.connect();
  return rateLimit({
    windowMs: 60000,
    limit: (req) => (req.path === '/burst' ? BURST_LIMIT : LIMIT),
    keyGenerator: (req) => req.get('x-user-id') || 'anonymous',
    standardHeaders: 'draft-8',
    legacyHeaders: false,
    store: new RedisStore({ sendCommand: (...args) => client.sendCommand(args) }),
  });
}

async function worker() {
  const express = require('express');
  const app = express();
  const limit = await limiter();
  if (limit) app.use(limit);
  const hello = (req, res) => res.json({ hello: 'world', user: req.get('x-user-id') || null });
  app.get('/', hello);
  app.get('/burst', hello);
  app.listen(Number(process.env.PORT || 0), '127.0.0.1');
}

if (cluster.isPrimary) {
  primary();
} else {
  worker().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
