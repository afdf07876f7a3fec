// Types of the ESM entry point: the same names as the CommonJS one.
export * from './index.js';
