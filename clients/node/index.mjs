// ESM entry point: the CommonJS implementation, re-exported by name.
import pkg from './index.js';

export const {
  FloodgateClient,
  FloodgateError,
  createClient,
  floodgateExpress,
  floodgate,
  floodgateFastify,
  defaultAttributes,
  safeValue,
  DEFAULT_URL,
} = pkg;
