// The middleware's request → attributes step.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultAttributes, safeValue } from '@floodgate/client';

test('default attributes: user header, ip, method, path without the query', () => {
  const req = {
    method: 'POST',
    url: '/api/chat/x?stream=1',
    ip: '10.0.0.1',
    headers: { 'x-user-id': 'u1' },
    socket: { remoteAddress: '127.0.0.1' },
  };
  assert.deepEqual(defaultAttributes(req), { ip: '10.0.0.1', method: 'POST', path: '/api/chat/x', user: 'u1' });
  assert.deepEqual(defaultAttributes({ ...req, headers: { 'x-api-user': 'u2' } }, 'x-api-user').user, 'u2');
  const bare = defaultAttributes({ method: 'GET', originalUrl: '/mounted/a', url: '/a', headers: {}, socket: { remoteAddress: '::1' } });
  assert.deepEqual(bare, { ip: '::1', method: 'GET', path: '/mounted/a' });
});

test('values floodgate would refuse are replaced by their SHA-256', () => {
  assert.equal(safeValue('u1'), 'u1');
  assert.equal(safeValue('x'.repeat(256)), 'x'.repeat(256));
  const long = safeValue('x'.repeat(257));
  assert.match(long, /^sha256:[0-9a-f]{64}$/);
  assert.equal(safeValue('x'.repeat(257)), long, 'the same value, the same key');
  assert.notEqual(safeValue('y'.repeat(257)), long);
  assert.match(safeValue('a\nb'), /^sha256:/);
  assert.match(safeValue('a\u0085b'), /^sha256:/);
  assert.match(safeValue('é'.repeat(129)), /^sha256:/, '258 bytes in UTF-8');
  assert.equal(safeValue('é'.repeat(128)), 'é'.repeat(128));
});
