// Typed use of the ESM entry point; `tsc --noEmit -p test/types` must pass.
// Each @ts-expect-error line must be an error: the types are not `any`.
import express from 'express';
import Fastify from 'fastify';
import {
  FloodgateClient, FloodgateError, floodgateExpress, floodgateFastify, floodgate, defaultAttributes,
  type Decision, type SettleResult, type ClientStats,
} from '@floodgate/client';

const client = new FloodgateClient({
  url: 'http://127.0.0.1:9720',
  timeoutMs: 200,
  failOpen: false,
  onError: (err: FloodgateError) => console.error(err.code, err.status),
  logger: console,
});
const decision: Decision = await client.check({ user: 'u1', endpoint: 'ai', plan: 3 }, { hits: 1, reserve: true, maxWaitMs: 500 });
const status: number = decision.status;
const lease: string | null = decision.lease;
if (decision.settlement) {
  const settled: SettleResult = await client.settle(decision.settlement, 120);
  const ok: boolean = settled.settled;
  void ok;
}
if (lease) await client.release(lease);
const stats: ClientStats = client.stats;
const failures: number = stats.failures + stats.failedOpen + stats.failedClosed;
void status;
void failures;
await client.peek({ user: 'u1' });

// @ts-expect-error hits is a number
await client.check({ user: 'u1' }, { hits: 'many' });
// @ts-expect-error attributes are flat
await client.check({ user: { id: 1 } });
// @ts-expect-error no such option
new FloodgateClient({ timeout: 5 });

const app = express();
app.use(floodgateExpress({
  attributes: (req) => ({ ...defaultAttributes(req), tenant: String(req.headers['x-tenant'] ?? '') }),
  hits: () => 2,
  reserve: true,
}));
app.use(floodgate({ endpoint: () => 'ai' }));
app.get('/chat', async (req, res) => {
  const seen = req.floodgate;
  if (seen?.settle) await seen.settle(42);
  res.json({ allowed: seen?.allowed, remaining: seen?.remaining });
});

const fastify = Fastify();
await fastify.register(floodgateFastify, { url: 'http://127.0.0.1:9720', failOpen: true, maxWaitMs: 100, hook: 'preHandler', skip: () => false });
// @ts-expect-error no such hook
floodgateFastify(fastify, { hook: 'onSend' }, () => {});
