/**
 * The Verifier's decision cache (the warm path): a repeated approved request is answered from one
 * salted hash of its Authorization and certificate header values. It must never answer what the
 * full path would not: not past the token's exp, not past the certificate's notAfter, not past
 * its TTL, not under other trust anchors, not for other header values, and not for requests
 * whose other facts (peer trust, repeated headers) change the outcome. The one refusal kept the
 * same way, a verified token with a certificate it is not bound to, obeys the same bounds.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig, type MtlsPopConfig } from '../../src/config.js';
import { Verifier, trustAnchorsFromPem, type Decision, type RequestFacts, type TrustAnchors } from '../../src/verifier.js';
import { thumbprintS256 } from '../../src/certificate.js';
import { fail, type Result } from '../../src/errors.js';
import { issue, makeTestPki, type TestPki, type Issued } from '../helpers/pki.js';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.js';
import { strictPemConfig } from '../helpers/seed.js';

let pki: TestPki;
let idp: JwksServer;

before(async () => {
  pki = await makeTestPki();
  idp = await startJwksServer();
});
after(async () => {
  await idp.close();
});

function config(overrides: Record<string, unknown> = {}, header: Record<string, unknown> = {}): MtlsPopConfig {
  const result = parseConfig(strictPemConfig(idp.issuer, pki.root.pem, overrides, header));
  assert.ok(result.ok, JSON.stringify(!result.ok && result.errors));
  return result.config;
}

/**
 * A clock only the test moves: the real time at its first reading (after the test made its tokens
 * and certificates, so their iat / notBefore are not in its future), then still until advanced. A
 * clock that kept running would add the machine's stalls to every advance (9 s + a 1 s stall is
 * past a 10 s TTL).
 */
function clock(): { now: () => number; advance: (ms: number) => void } {
  let start: number | undefined;
  let offset = 0;
  return { now: () => (start ??= Date.now()) + offset, advance: (ms) => { offset += ms; } };
}

function chainHeader(leaf: Issued): string {
  return `${leaf.der.toString('base64')},${pki.intermediate.der.toString('base64')}`;
}

let serial = 0;

/** A distinct token (own jti) bound to `cert`. */
async function token(cert: Issued, lifetimeS = 300): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return idp.sign({
    iss: idp.issuer, sub: 'svc', typ: 'Bearer', iat: now, exp: now + lifetimeS, jti: `t-${++serial}`, cnf: { 'x5t#S256': thumbprintS256(cert.der) },
  });
}

function facts(bearer: string, cert: Issued, extra: Partial<RequestFacts> = {}): RequestFacts {
  return { authorization: [`Bearer ${bearer}`], certificateHeader: [chainHeader(cert)], peerTrusted: true, host: 'api.example', ...extra };
}

function reason(decision: Decision): string {
  return decision.allow ? 'allowed' : decision.failure.reason;
}

describe('verifier decision cache', () => {
  test('a repeated approval comes from the decision cache, with the same claims and certificate', async () => {
    const verifier = new Verifier(config());
    const bearer = await token(pki.client);
    const first = await verifier.verify(facts(bearer, pki.client));
    const second = await verifier.verify(facts(bearer, pki.client));
    assert.equal(first.allow, true);
    assert.equal(second.allow, true);
    assert.ok(first.allow && second.allow);
    assert.equal(second.claims, first.claims);
    assert.equal(second.certificate?.thumbprint, thumbprintS256(pki.client.der));
    const stats = verifier.stats();
    assert.deepEqual(stats.decisions, { hits: 1, misses: 1, size: 1 });
    assert.equal(stats.tokens.hits, 0, 'the token cache was not consulted on the repeat');
  });

  test('never past the token exp: one second after exp the repeat is token_expired', async () => {
    const time = clock();
    const verifier = new Verifier(config(), { now: time.now });
    const bearer = await token(pki.client, 30);
    assert.equal(reason(await verifier.verify(facts(bearer, pki.client))), 'allowed');
    time.advance(31_000);
    assert.equal(reason(await verifier.verify(facts(bearer, pki.client))), 'token_expired');
    assert.equal(verifier.stats().decisions.hits, 0);
  });

  test('never past the certificate notAfter, even with TTLs far longer', async () => {
    const time = clock();
    const shortLived = await issue({ subject: 'CN=short-lived', issuer: pki.intermediate, notAfter: new Date(Date.now() + 20_000) });
    const verifier = new Verifier(config({ cache_ttl: 3600 }, { cert_cache_ttl: 3_600_000 }), { now: time.now });
    const bearer = await token(shortLived, 3600);
    assert.equal(reason(await verifier.verify(facts(bearer, shortLived))), 'allowed');
    assert.equal(reason(await verifier.verify(facts(bearer, shortLived))), 'allowed');
    time.advance(21_000);
    assert.equal(reason(await verifier.verify(facts(bearer, shortLived))), 'certificate_expired');
    assert.equal(verifier.stats().decisions.hits, 1);
  });

  test('kept at most min(cache_ttl, cert_cache_ttl): after 10 s of a 10 s TTL the full path decides again', async () => {
    const time = clock();
    const verifier = new Verifier(config({ cache_ttl: 600 }, { cert_cache_ttl: 10_000 }), { now: time.now });
    const bearer = await token(pki.client);
    await verifier.verify(facts(bearer, pki.client));
    time.advance(9_000);
    assert.equal(reason(await verifier.verify(facts(bearer, pki.client))), 'allowed');
    assert.equal(verifier.stats().decisions.hits, 1);
    time.advance(1_000);
    assert.equal(reason(await verifier.verify(facts(bearer, pki.client))), 'allowed');
    assert.deepEqual(verifier.stats().decisions, { hits: 1, misses: 2, size: 1 });
  });

  test('another certificate with the approved token is a thumbprint mismatch', async () => {
    const verifier = new Verifier(config());
    const bearer = await token(pki.client);
    assert.equal(reason(await verifier.verify(facts(bearer, pki.client))), 'allowed');
    assert.equal(reason(await verifier.verify(facts(bearer, pki.otherClient))), 'certificate_thumbprint_mismatch');
  });

  test('the approved headers from an untrusted peer: certificate_missing, not the cached approval', async () => {
    const verifier = new Verifier(config());
    const bearer = await token(pki.client);
    assert.equal(reason(await verifier.verify(facts(bearer, pki.client))), 'allowed');
    const untrusted = await verifier.verify(facts(bearer, pki.client, { peerTrusted: false }));
    assert.equal(reason(untrusted), 'certificate_missing');
    assert.deepEqual(untrusted.notes, ['certificate_header_ignored_untrusted_peer']);
  });

  test('the approved Authorization value sent twice: authorization_multiple', async () => {
    const verifier = new Verifier(config());
    const bearer = await token(pki.client);
    assert.equal(reason(await verifier.verify(facts(bearer, pki.client))), 'allowed');
    const twice = await verifier.verify(facts(bearer, pki.client, { authorization: [`Bearer ${bearer}`, `Bearer ${bearer}`] }));
    assert.equal(reason(twice), 'authorization_multiple');
  });

  test('new trust anchors: an approval under the old ones is not reused', async () => {
    const cfg = config();
    const good = trustAnchorsFromPem([pki.root.pem], cfg);
    const rogue = trustAnchorsFromPem([pki.rogueRoot.pem], cfg);
    assert.ok(good.ok && rogue.ok);
    let current: Result<TrustAnchors> = good;
    const verifier = new Verifier(cfg, { trustAnchors: () => Promise.resolve(current) });
    const bearer = await token(pki.client);
    assert.equal(reason(await verifier.verify(facts(bearer, pki.client))), 'allowed');
    current = rogue;
    assert.equal(reason(await verifier.verify(facts(bearer, pki.client))), 'certificate_untrusted');
    assert.equal(verifier.stats().decisions.size, 0, 'the stale approval was dropped');
  });

  test('bounded by cache_size; cache_size 0 caches nothing', async () => {
    const small = new Verifier(config({ cache_size: 2 }));
    for (let i = 0; i < 4; i++) assert.equal(reason(await small.verify(facts(await token(pki.client), pki.client))), 'allowed');
    assert.equal(small.stats().decisions.size, 2);
    const none = new Verifier(config({ cache_size: 0 }));
    const bearer = await token(pki.client);
    await none.verify(facts(bearer, pki.client));
    assert.equal(reason(await none.verify(facts(bearer, pki.client))), 'allowed');
    assert.deepEqual(none.stats().decisions, { hits: 0, misses: 0, size: 0 });
  });

  test('a repeated thumbprint mismatch is refused from the cache, exactly as the full path refused it', async () => {
    const verifier = new Verifier(config());
    const bearer = await token(pki.client);
    const first = await verifier.verify(facts(bearer, pki.otherClient));
    const before = verifier.stats();
    const second = await verifier.verify(facts(bearer, pki.otherClient));
    assert.ok(!first.allow && !second.allow);
    assert.equal(first.failure.reason, 'certificate_thumbprint_mismatch');
    assert.deepEqual(second.failure, first.failure);
    assert.deepEqual(second.response, first.response);
    assert.deepEqual(second.notes, []);
    const after = verifier.stats();
    assert.equal(after.decisions.hits, before.decisions.hits + 1, 'answered by the decision key');
    assert.equal(after.tokens.hits + after.tokens.misses, before.tokens.hits + before.tokens.misses, 'the token was not looked up again');
    assert.equal(after.decisions.size, 1);
    // The bound certificate with the same token is still approved: another key.
    assert.equal(reason(await verifier.verify(facts(bearer, pki.client))), 'allowed');
  });

  test('a kept mismatch never outlives the token: after exp the repeat is token_expired', async () => {
    const time = clock();
    const verifier = new Verifier(config(), { now: time.now });
    const bearer = await token(pki.client, 30);
    assert.equal(reason(await verifier.verify(facts(bearer, pki.otherClient))), 'certificate_thumbprint_mismatch');
    assert.equal(reason(await verifier.verify(facts(bearer, pki.otherClient))), 'certificate_thumbprint_mismatch');
    assert.equal(verifier.stats().decisions.hits, 1);
    time.advance(31_000);
    assert.equal(reason(await verifier.verify(facts(bearer, pki.otherClient))), 'token_expired');
    assert.equal(verifier.stats().decisions.hits, 1);
  });

  test('a kept mismatch is decided again under new trust anchors, from an untrusted peer, or with a second header', async () => {
    const cfg = config();
    const good = trustAnchorsFromPem([pki.root.pem], cfg);
    assert.ok(good.ok);
    let current: Result<TrustAnchors> = good;
    const verifier = new Verifier(cfg, { trustAnchors: () => Promise.resolve(current) });
    const bearer = await token(pki.client);
    assert.equal(reason(await verifier.verify(facts(bearer, pki.otherClient))), 'certificate_thumbprint_mismatch');
    const untrusted = await verifier.verify(facts(bearer, pki.otherClient, { peerTrusted: false }));
    assert.equal(reason(untrusted), 'certificate_missing');
    assert.deepEqual(untrusted.notes, ['certificate_header_ignored_untrusted_peer']);
    const twice = await verifier.verify(facts(bearer, pki.otherClient, { authorization: [`Bearer ${bearer}`, `Bearer ${bearer}`] }));
    assert.equal(reason(twice), 'authorization_multiple');
    current = fail('trust_anchors_unavailable', 'CA certificates could not be read');
    assert.equal(reason(await verifier.verify(facts(bearer, pki.otherClient))), 'trust_anchors_unavailable');
    assert.equal(verifier.stats().decisions.size, 0, 'the refusal kept under the old anchors was dropped');
  });

  test('kept mismatches are bounded by cache_size and never evict approvals', async () => {
    const verifier = new Verifier(config({ cache_size: 2 }));
    const approved = await token(pki.client);
    assert.equal(reason(await verifier.verify(facts(approved, pki.client))), 'allowed');
    for (let i = 0; i < 4; i++) {
      assert.equal(reason(await verifier.verify(facts(await token(pki.client), pki.otherClient))), 'certificate_thumbprint_mismatch');
    }
    assert.equal(verifier.stats().decisions.size, 3, 'one approval and the two newest refusals');
    const hits = verifier.stats().decisions.hits;
    assert.equal(reason(await verifier.verify(facts(approved, pki.client))), 'allowed');
    assert.equal(verifier.stats().decisions.hits, hits + 1, 'the approval is still cached');
    const none = new Verifier(config({ cache_size: 0 }));
    for (let i = 0; i < 2; i++) assert.equal(reason(await none.verify(facts(approved, pki.otherClient))), 'certificate_thumbprint_mismatch');
    assert.deepEqual(none.stats().decisions, { hits: 0, misses: 0, size: 0 });
  });

  test('other rejections are never cached: a forged signature is rejected every time', async () => {
    const verifier = new Verifier(config());
    const forger = idp.makeKey('RS256', idp.keys[0]?.kid);
    const now = Math.floor(Date.now() / 1000);
    const forged = await idp.sign({ iss: idp.issuer, typ: 'Bearer', iat: now, exp: now + 300, cnf: { 'x5t#S256': thumbprintS256(pki.client.der) } }, { key: forger });
    for (let i = 0; i < 2; i++) assert.equal(reason(await verifier.verify(facts(forged, pki.client))), 'token_signature_invalid');
    assert.equal(verifier.stats().decisions.size, 0);
  });
});
