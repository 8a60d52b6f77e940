/**
 * kong/ca-certificates.ts against the Admin API emulator (real HTTP on 127.0.0.1) with a test
 * clock: TTL caching, one shared round for concurrent callers, the stale window, and the backoff
 * after failures (1 s, 2 s, 4 s, then 5 s), counted from the end of a failed attempt.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KongCaCertificates } from '../../kong/ca-certificates.js';
import { AdminApiEmulator } from '../harness/upstreams.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import type { Result } from '../../src/errors.js';

const CA_UUID = '6f1c2d3e-4a5b-4c6d-8e7f-8091a2b3c4d5';

let pki: TestPki;
let admin: AdminApiEmulator;

before(async () => {
  pki = await makeTestPki();
  admin = await AdminApiEmulator.start({ ca_certificates: { [CA_UUID]: pki.root.pem } });
});

after(async () => {
  await admin?.close();
});

/** A resolver on a clock the test moves by hand. */
function resolverAt(url: string, timeoutMs = 2000): { resolver: KongCaCertificates; clock: { now: number } } {
  const clock = { now: 1_000_000 };
  const resolver = new KongCaCertificates([CA_UUID], { adminApiUrl: url, timeoutMs, ttlMs: 60_000, staleMs: 300_000, now: () => clock.now });
  return { resolver, clock };
}

function pems(result: Result<readonly string[]>): readonly string[] {
  assert.ok(result.ok, result.ok ? '' : result.error.detail);
  return result.value;
}

function failure(result: Result<readonly string[]>): string {
  assert.ok(!result.ok, 'expected a failure');
  assert.equal(result.error.reason, 'trust_anchors_unavailable');
  return result.error.detail;
}

describe('Kong CA certificate entities through the Admin API', () => {
  test('cached for the TTL; concurrent callers share one request', async () => {
    await admin.setMode('up');
    const { resolver, clock } = resolverAt(admin.url);
    const before = admin.requests;
    const answers = await Promise.all(Array.from({ length: 20 }, () => resolver.resolve()));
    for (const answer of answers) assert.deepEqual(pems(answer), [pki.root.pem]);
    assert.equal(admin.requests - before, 1, 'one request for 20 concurrent callers');
    clock.now += 59_000;
    pems(await resolver.resolve());
    assert.equal(admin.requests - before, 1, 'still fresh at 59 s');
    clock.now += 2_000;
    pems(await resolver.resolve());
    assert.equal(admin.requests - before, 2, 'refreshed after the 60 s TTL');
  });

  test('no answer yet and the Admin API failing: fail closed, then ask again only after 1 s, 2 s, 4 s, 5 s, 5 s', async () => {
    await admin.setMode('error');
    const { resolver, clock } = resolverAt(admin.url);
    const detail = `CA certificates could not be read from the Kong Admin API: ${admin.url} answered HTTP 500`;
    const requests = (): number => admin.requests;
    const start = requests();
    assert.equal(failure(await resolver.resolve()), detail);
    assert.equal(requests() - start, 1);
    let asked = 1;
    for (const waitMs of [1000, 2000, 4000, 5000, 5000]) {
      clock.now += waitMs - 1;
      assert.equal(failure(await resolver.resolve()), detail, 'the last failure, at once');
      assert.equal(requests() - start, asked, `not asked again ${waitMs - 1} ms after the failure`);
      clock.now += 1;
      assert.equal(failure(await resolver.resolve()), detail);
      asked++;
      assert.equal(requests() - start, asked, `asked again ${waitMs} ms after the failure`);
    }
    // Back: the next attempt after the backoff succeeds, and a success resets the backoff.
    await admin.setMode('up');
    clock.now += 5000;
    assert.deepEqual(pems(await resolver.resolve()), [pki.root.pem]);
    assert.equal(resolver.lastError, null);
    await admin.setMode('error');
    clock.now += 60_001;
    pems(await resolver.resolve()); // TTL over, refresh fails, the stale answer serves
    clock.now += 1000;
    pems(await resolver.resolve());
    // asked + 1 (the success) + 1 (the failed refresh) + 1 (1 s later)
    assert.equal(requests() - start, asked + 3, 'after a success the first wait is 1 s again');
  });

  test('an answer on hand: the stale window serves it through the backoff, then fail closed at 5 min', async () => {
    await admin.setMode('up');
    const { resolver, clock } = resolverAt(admin.url);
    pems(await resolver.resolve());
    await admin.setMode('down');
    const start = admin.requests;
    clock.now += 61_000;
    assert.deepEqual(pems(await resolver.resolve()), [pki.root.pem], 'stale answer after the failed refresh');
    clock.now += 500;
    assert.deepEqual(pems(await resolver.resolve()), [pki.root.pem], 'stale answer during the backoff');
    assert.equal(admin.requests, start, 'the Admin API is down: nothing answered');
    clock.now = 1_000_000 + 300_000;
    const detail = failure(await resolver.resolve());
    assert.match(detail, new RegExp(`^CA certificates could not be read from the Kong Admin API: ${admin.url}: connect ECONNREFUSED`));
    await admin.setMode('up');
  });

  test('a deleted entity (404) is final: no stale answer, fail closed at the next refresh', async () => {
    await admin.setMode('up');
    const { resolver, clock } = resolverAt(admin.url);
    pems(await resolver.resolve());
    admin.deleteCaCertificate(CA_UUID);
    try {
      clock.now += 30_000;
      pems(await resolver.resolve()); // within the TTL: the cached copy
      clock.now += 31_000;
      assert.equal(failure(await resolver.resolve()),
        `CA certificates could not be read from the Kong Admin API: ${admin.url} answered HTTP 404`);
      clock.now += 10_000;
      failure(await resolver.resolve()); // and it stays rejected: no stale copy to fall back on
    } finally {
      admin.setCaCertificate(CA_UUID, pki.root.pem);
    }
    clock.now += 10_000;
    assert.deepEqual(pems(await resolver.resolve()), [pki.root.pem], 'back once the entity is back');
  });

  test('a hanging Admin API costs one timeout per backoff, not one per request', async () => {
    const sockets = new Set<import('node:net').Socket>();
    let received = 0;
    const hanging: Server = createServer(() => { received++; /* never answers */ });
    hanging.on('connection', (s) => { sockets.add(s); });
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}`;
    try {
      // The clock is real time here: the backoff must start when the timeout ends. 1 s, not 300 ms:
      // the ten answers from the backoff must come well within it even when the machine stalls.
      const TIMEOUT_MS = 1000;
      const resolver = new KongCaCertificates([CA_UUID], { adminApiUrl: url, timeoutMs: TIMEOUT_MS });
      const started = performance.now();
      const first = failure(await resolver.resolve());
      assert.equal(first, `CA certificates could not be read from the Kong Admin API: ${url} did not answer within ${TIMEOUT_MS} ms`);
      const firstMs = performance.now() - started;
      assert.ok(firstMs >= TIMEOUT_MS - 5, `the first request waited the timeout (${firstMs.toFixed(0)} ms)`);
      const again = performance.now();
      const rest = await Promise.all(Array.from({ length: 10 }, () => resolver.resolve()));
      for (const r of rest) assert.equal(failure(r), first);
      const restMs = performance.now() - again;
      // Waiting for a timeout would take TIMEOUT_MS; anything shorter is a stall of this loaded machine.
      assert.ok(restMs < TIMEOUT_MS - 100, `the next requests were answered without waiting for a timeout (${restMs.toFixed(0)} ms for 10)`);
      assert.equal(received, 1, 'the Admin API was asked once');
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => hanging.close(() => resolve()));
    }
  });
});
