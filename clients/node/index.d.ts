// Types for @floodgate/client (hand-written; the package is plain
// JavaScript with no build step).

import type { Agent, IncomingMessage, ServerResponse } from 'node:http';

/** Attributes of a check: name → value (null/undefined are dropped). */
export type Attributes = Record<string, string | number | boolean | null | undefined>;

/** How a call to floodgate failed. */
export type FloodgateErrorCode = 'timeout' | 'unreachable' | 'server_error' | 'bad_response' | 'rejected';

/** A failed call to floodgate (given to `onError`, and in `decision.error`). */
export declare class FloodgateError extends Error {
  constructor(code: FloodgateErrorCode, message: string, details?: { op?: string; status?: number; body?: unknown; cause?: unknown });
  readonly name: 'FloodgateError';
  /** Why it failed. */
  readonly code: FloodgateErrorCode;
  /** `check`, `release` or `settle`. */
  readonly op: 'check' | 'release' | 'settle' | undefined;
  /** floodgate's HTTP status, when it answered. */
  readonly status: number | undefined;
  /** floodgate's JSON answer, when it sent one (e.g. `{error}` on a 400 or 409). */
  readonly body: unknown;
}

/** One policy's verdict in `statuses` (floodgate's JSON, as sent). */
export interface PolicyStatus {
  policy: string;
  allowed: boolean;
  limit: number;
  remaining: number;
  reset_after_ms: number;
  retry_after_ms: number;
  shadow: boolean;
  source: 'redis' | 'local' | 'fallback' | string;
}

/** floodgate's `/v1/check` JSON answer. */
export interface CheckBody {
  allowed: boolean;
  policy: string;
  limit: number;
  remaining: number;
  reset_after_ms: number;
  retry_after_ms: number;
  lease?: string;
  settlement?: string;
  waited_ms?: number;
  deny_status?: number;
  statuses: PolicyStatus[];
  [field: string]: unknown;
}

/** The answer to a check. */
export interface Decision {
  /** Whether the request may proceed. */
  allowed: boolean;
  /** True when floodgate could not be asked and `failOpen` decided. */
  failed: boolean;
  /** The HTTP status to answer: 200 allowed; the policy's `deny_status` or 429 denied; 503 failed closed. */
  status: number;
  /** The deciding policy ("" when none applies or the check failed). */
  policy: string;
  limit: number;
  remaining: number;
  resetAfterMs: number;
  retryAfterMs: number;
  /** How long floodgate made the check wait (`maxWaitMs`); 0 when it did not. */
  waitedMs: number;
  /** The deciding policy's `deny_status` when floodgate sent one. */
  denyStatus: number | null;
  /** A concurrency lease to release, or null. */
  lease: string | null;
  /** A settlement id (checks with `reserve`), or null. */
  settlement: string | null;
  statuses: PolicyStatus[];
  /** The rate-limit headers floodgate sent (lower-case names): RateLimit, RateLimit-Policy, Retry-After, X-RateLimit-*. */
  headers: Record<string, string>;
  /** floodgate's JSON answer; on a failed-closed check `{error: "rate limiter unavailable"}`; null on a failed-open one. */
  body: CheckBody | { error: string } | null;
  /** Why the check failed, when `failed`. */
  error: FloodgateError | null;
}

/** The answer to a settle. */
export interface SettleResult {
  settled: boolean;
  /** floodgate's HTTP status (200 settled; 400 a malformed id, 409 used or expired), undefined when it did not answer. */
  status: number | undefined;
  error: FloodgateError | null;
  /** The other fields of floodgate's answer (e.g. the charged difference). */
  [field: string]: unknown;
}

export interface CheckOptions {
  /** The cost (default 1; 0 peeks). With `reserve`, the estimated cost. */
  hits?: number;
  /** Reserve `hits` and get a settlement id to settle with the actual cost. */
  reserve?: boolean;
  /** How long floodgate may make the check wait for its turn (capped by the policy's `max_wait`). */
  maxWaitMs?: number;
}

/** Where messages about failures go: a function, or an object with `warn` (console, pino…); false: nowhere. */
export type Logger = ((message: string) => void) | { warn(message: string): void } | false;

export interface ClientOptions {
  /** floodgate's HTTP listener. Default `http://127.0.0.1:9720`. */
  url?: string;
  /** Time for a whole check, connect to last byte, in ms (a check with `maxWaitMs` gets that much more). Default 200. */
  timeoutMs?: number;
  /** Time for a release or a settle, in ms. Default 1000. */
  releaseTimeoutMs?: number;
  /** Allow requests when floodgate cannot be asked (else deny them with 503). Default true. */
  failOpen?: boolean;
  /** Called with every failure. */
  onError?: (error: FloodgateError) => void;
  /** Default `console`. */
  logger?: Logger;
  /** At most one failure message per this many ms (the others are counted in the next one). Default 10000. */
  logIntervalMs?: number;
  /** An HTTP agent to use instead of the client's own keep-alive agent. */
  agent?: Agent;
}

/** Counters since the client was made. */
export interface ClientStats {
  checks: number;
  allowed: number;
  denied: number;
  /** Calls (check, release, settle) that failed, for any reason. */
  failures: number;
  /** Checks allowed because floodgate could not be asked. */
  failedOpen: number;
  /** Checks denied (503) because floodgate could not be asked. */
  failedClosed: number;
  releases: number;
  settles: number;
}

export declare class FloodgateClient {
  constructor(options?: ClientOptions);
  readonly url: string;
  readonly timeoutMs: number;
  readonly releaseTimeoutMs: number;
  readonly failOpen: boolean;
  readonly stats: ClientStats;
  /** Asks floodgate; never rejected because of floodgate (only for invalid arguments). */
  check(attributes: Attributes, options?: CheckOptions): Promise<Decision>;
  /** A check with hits 0. */
  peek(attributes: Attributes): Promise<Decision>;
  /** Releases a lease; false when it failed (the lease then lapses at its timeout). */
  release(lease: string): Promise<boolean>;
  /** Settles a reservation with its actual cost. */
  settle(settlement: string, actual: number): Promise<SettleResult>;
  /** Closes the kept-alive connections. */
  close(): void;
}

/** Same as `new FloodgateClient(options)`. */
export declare function createClient(options?: ClientOptions): FloodgateClient;

/** The request as the middleware reads it (Express, Fastify and node:http requests all fit). */
export interface RequestLike {
  method?: string;
  url?: string;
  originalUrl?: string;
  ip?: string;
  headers: IncomingMessage['headers'];
  socket?: { remoteAddress?: string };
}

/** `req.floodgate`: the decision, and `settle` when the check returned a settlement. */
export interface RequestDecision extends Decision {
  settle?: (actual: number) => Promise<SettleResult>;
}

/** Options of the Express and Fastify middleware. */
export interface MiddlewareOptions<Req = any> extends ClientOptions {
  /** A client to share; otherwise one is made from these options. */
  client?: FloodgateClient;
  /** The attributes of a request. Default: `user` (the `userHeader` header), `ip`, `method`, `path`. */
  attributes?: (req: Req) => Attributes;
  /** An `endpoint` attribute added to the attributes (an endpoint class of the config). */
  endpoint?: (req: Req) => string | undefined | null;
  /** The user header the default attributes read. Default `x-user-id`. */
  userHeader?: string;
  /** The cost of a request (default 1). */
  hits?: number | ((req: Req) => number | undefined);
  /** Reserve `hits` and expose `req.floodgate.settle(actual)`. */
  reserve?: boolean | ((req: Req) => boolean);
  /** How long a request may wait for its turn. */
  maxWaitMs?: number | ((req: Req) => number | undefined);
  /** True: the request is not checked. */
  skip?: (req: Req) => boolean;
  /** Fastify only: the hook that checks (`preHandler` sees the parsed body). Default `onRequest`. */
  hook?: 'onRequest' | 'preHandler';
}

/** A `(req, res, next)` middleware (Express, Connect, node:http). */
export interface ExpressMiddleware {
  (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void): void;
  /** The client it uses (its `stats`). */
  readonly client: FloodgateClient;
}

/** Express (or any `(req, res, next)` framework) middleware. */
export declare function floodgateExpress(options?: MiddlewareOptions): ExpressMiddleware;

/** The name examples/express has always used: `floodgateExpress`. */
export declare const floodgate: typeof floodgateExpress;

/** The Fastify plugin: `fastify.register(floodgateFastify, options)`. Sets `request.floodgate`. */
export declare function floodgateFastify(
  instance: any,
  options: MiddlewareOptions,
  done: (err?: Error) => void,
): void;

/** The default attributes of a request. */
export declare function defaultAttributes(req: RequestLike, userHeader?: string): Attributes;

/** A value floodgate accepts: over 256 bytes or with control characters, its `sha256:<hex>`. */
export declare function safeValue(value: string): string;

/** `http://127.0.0.1:9720`. */
export declare const DEFAULT_URL: string;

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** Set by the floodgate middleware. */
      floodgate?: RequestDecision;
    }
  }
}
