// What the client adds to a check: sequential checks through
// FloodgateClient.check against the same POST /v1/check made with
// node:http directly (kept-alive agent, the body read as text), on one real
// floodgate (local store). Alternating rounds, so drift hits both sides.
//
//   FLOODGATE_BIN=../../target/release/floodgate node bench/overhead.mjs
//   (BENCH_CHECKS=20000 for more checks per side; default 10000)

import http from 'node:http';
import { FloodgateClient } from '@floodgate/client';
import { startFloodgate } from '../test/helpers.mjs';

const CHECKS = Number(process.env.BENCH_CHECKS || 10_000);
const ROUNDS = 10;
const POLICY = `
[[policy]]
name = "bench"
match = { endpoint = "bench" }
key = ["user"]
limit = 1000000000
window = "1h"
`;
const attributes = { endpoint: 'bench', user: 'bench-user', ip: '10.0.0.1', method: 'POST', path: '/api/x' };

function rawCheck(agent, url) {
  const body = Buffer.from(JSON.stringify({ attributes }));
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}/v1/check`, {
      method: 'POST',
      agent,
      headers: { 'content-type': 'application/json', 'content-length': body.length },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => (res.statusCode === 200 ? resolve(text) : reject(new Error(text))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function timed(times, count, one) {
  for (let i = 0; i < count; i += 1) {
    const started = process.hrtime.bigint();
    await one();
    times.push(Number(process.hrtime.bigint() - started) / 1000);
  }
}

function summary(times) {
  const sorted = [...times].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  return { mean: mean.toFixed(1), p50: at(0.5).toFixed(1), p99: at(0.99).toFixed(1) };
}

const floodgate = await startFloodgate(POLICY);
const agent = new http.Agent({ keepAlive: true });
const client = new FloodgateClient({ url: floodgate.url, timeoutMs: 5000 });
try {
  const raw = [];
  const viaClient = [];
  await timed([], 1000, () => rawCheck(agent, floodgate.url));
  await timed([], 1000, async () => {
    const decision = await client.check(attributes);
    if (!decision.allowed || decision.failed) throw new Error(`not allowed: ${JSON.stringify(decision)}`);
  });
  for (let round = 0; round < ROUNDS; round += 1) {
    await timed(raw, CHECKS / ROUNDS, () => rawCheck(agent, floodgate.url));
    await timed(viaClient, CHECKS / ROUNDS, () => client.check(attributes));
  }
  const r = summary(raw);
  const c = summary(viaClient);
  console.log(`checks per side: ${CHECKS}, sequential, one connection each (µs per check)`);
  console.log(`raw node:http   mean ${r.mean}  p50 ${r.p50}  p99 ${r.p99}`);
  console.log(`client.check    mean ${c.mean}  p50 ${c.p50}  p99 ${c.p99}`);
  console.log(`client overhead (p50): ${(Number(c.p50) - Number(r.p50)).toFixed(1)} µs`);
  if (client.stats.failures !== 0) throw new Error(`${client.stats.failures} failed checks`);
} finally {
  client.close();
  agent.destroy();
  await floodgate.stop();
}
