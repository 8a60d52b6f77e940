import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeTestPki, opensslThumbprint } from './pki.js';
import { X509Certificate } from 'node:crypto';

test('test PKI: client verifies against its intermediate, openssl reads it', async () => {
  const pki = await makeTestPki();
  const leaf = new X509Certificate(pki.client.der);
  assert.equal(leaf.verify(new X509Certificate(pki.intermediate.der).publicKey), true);
  assert.match(opensslThumbprint(pki.client.pem), /^[A-Za-z0-9_-]{43}$/);
});
