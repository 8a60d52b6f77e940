/**
 * The order of the verifier's checks (issue 11 item 4): the token is verified before any work on
 * the certificate, so an unauthenticated request never resolves trust anchors, builds a path or
 * reaches revocation; a token bound to another certificate stops right after the header is decoded.
 * Spies on the trust-anchor provider, the path validator and the revocation lookup count the work.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig, type MtlsPopConfig } from '../../src/config.js';
import { Verifier, trustAnchorsFromPem, type Decision, type TrustAnchors } from '../../src/verifier.js';
import { thumbprintS256 } from '../../src/certificate.js';
import type { RevocationLookup } from '../../src/revocation.js';
import { ok } from '../../src/errors.js';
import { makeTestPki, type TestPki, type Issued } from '../helpers/pki.js';
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

function config(mode: 'strict' | 'optional' = 'strict'): MtlsPopConfig {
  const result = parseConfig(strictPemConfig(idp.issuer, pki.root.pem, { proof_of_possession_mtls: mode }, { revocation_check_mode: 'STRICT' }));
  assert.ok(result.ok, JSON.stringify(!result.ok && result.errors));
  return result.config;
}

interface Spied {
  readonly verifier: Verifier;
  readonly work: { anchors: number; revocation: number; validations: () => number };
}

/** A verifier whose trust-anchor resolution, path validation and revocation lookups are counted. */
function spied(mode: 'strict' | 'optional' = 'strict'): Spied {
  const cfg = config(mode);
  const anchors = trustAnchorsFromPem([pki.root.pem], cfg);
  assert.ok(anchors.ok);
  const fixed: TrustAnchors = anchors.value;
  const work = { anchors: 0, revocation: 0, validations: () => fixed.validator.stats().misses + fixed.validator.stats().hits };
  const revocation: RevocationLookup = {
    check: () => {
      work.revocation++;
      return Promise.resolve(ok(undefined));
    },
  } as unknown as RevocationLookup;
  const verifier = new Verifier(cfg, {
    trustAnchors: () => {
      work.anchors++;
      return Promise.resolve(ok(fixed));
    },
    revocation,
  });
  return { verifier, work };
}

const header = (...certs: Issued[]): string => certs.map((c) => c.der.toString('base64')).join(',');

function bound(cert: Issued, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return { iss: idp.issuer, sub: 'svc', iat: now, exp: now + 300, cnf: { 'x5t#S256': thumbprintS256(cert.der) }, ...extra };
}

function reason(decision: Decision): string {
  assert.equal(decision.allow, false, 'expected a rejection');
  return decision.allow ? '' : decision.failure.reason;
}

const request = (token: string, certHeader: string) => ({ authorization: [`Bearer ${token}`], certificateHeader: [certHeader], peerTrusted: true });

/** A token whose signature does not verify: the payload of one token under the signature of another. */
async function forged(claims: Record<string, unknown>): Promise<string> {
  const [h, , s] = (await idp.sign(bound(pki.client))).split('.');
  const [, p] = (await idp.sign(claims)).split('.');
  return `${h}.${p}.${s}`;
}

describe('verifier order: token before certificate', () => {
  test('strict: a forged token with a rogue certificate is token_signature_invalid; no anchors, no path, no revocation', async () => {
    const { verifier, work } = spied();
    const token = await forged(bound(pki.rogueClient));
    assert.equal(reason(await verifier.verify(request(token, header(pki.rogueClient)))), 'token_signature_invalid');
    assert.deepEqual({ anchors: work.anchors, validations: work.validations(), revocation: work.revocation }, { anchors: 0, validations: 0, revocation: 0 });
  });

  test('strict: an expired token with a good certificate is token_expired, and the certificate is not examined', async () => {
    const { verifier, work } = spied();
    const token = await idp.sign(bound(pki.client, { exp: Math.floor(Date.now() / 1000) - 3600 }));
    assert.equal(reason(await verifier.verify(request(token, header(pki.client, pki.intermediate)))), 'token_expired');
    assert.equal(work.validations(), 0);
  });

  test('strict: header presence checks still come first (missing header: certificate_missing, whatever the token)', async () => {
    const { verifier, work } = spied();
    const decision = await verifier.verify({ authorization: [`Bearer ${await forged(bound(pki.client))}`], certificateHeader: [], peerTrusted: true });
    assert.equal(reason(decision), 'certificate_missing');
    assert.equal(work.anchors, 0);
  });

  test('strict: an unbound valid token is token_not_bound before any path is built', async () => {
    const { verifier, work } = spied();
    const token = await idp.sign({ ...bound(pki.client), cnf: undefined });
    assert.equal(reason(await verifier.verify(request(token, header(pki.rogueClient)))), 'token_not_bound');
    assert.equal(work.validations(), 0);
  });

  test('a valid token bound to another certificate: certificate_thumbprint_mismatch without a path search or revocation', async () => {
    for (const mode of ['strict', 'optional'] as const) {
      const { verifier, work } = spied(mode);
      const token = await idp.sign(bound(pki.otherClient));
      assert.equal(reason(await verifier.verify(request(token, header(pki.rogueClient)))), 'certificate_thumbprint_mismatch', mode);
      assert.deepEqual({ validations: work.validations(), revocation: work.revocation }, { validations: 0, revocation: 0 }, mode);
    }
  });

  test('the token-bound certificate is validated as before: rogue -> certificate_untrusted; good -> allowed with one revocation check', async () => {
    const { verifier, work } = spied();
    assert.equal(reason(await verifier.verify(request(await idp.sign(bound(pki.rogueClient)), header(pki.rogueClient)))), 'certificate_untrusted');
    assert.equal(work.validations(), 1);
    const good = await verifier.verify(request(await idp.sign(bound(pki.client)), header(pki.client, pki.intermediate)));
    assert.ok(good.allow, good.allow ? '' : `${good.failure.reason}: ${good.failure.detail}`);
    assert.equal(work.revocation, 1);
  });
});
