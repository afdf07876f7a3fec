// Typed use of the CommonJS entry point.
import floodgate = require('@floodgate/client');

const client = floodgate.createClient({ timeoutMs: 100 });
client.check({ user: 'u1' }).then((decision: floodgate.Decision) => {
  const allowed: boolean = decision.allowed;
  return allowed;
});
const middleware: floodgate.ExpressMiddleware = floodgate.floodgateExpress({ failOpen: false });
const shared: floodgate.FloodgateClient = middleware.client;
// @ts-expect-error release takes a lease string
shared.release(42);
export = shared;
