/**
 * The whole core decision: request facts -> allow / 400 / 401 / 403, with a real JWKS server on
 * 127.0.0.1 and a test PKI. Each test names a behaviour an operator would recognise.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig, type MtlsPopConfig } from '../../src/config.js';
import { Verifier, type Decision, type RequestFacts } from '../../src/verifier.js';
import { thumbprintS256 } from '../../src/certificate.js';
import { makeTestPki, toPem, type TestPki, type Issued } from '../helpers/pki.js';
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

/** HAProxy `%[ssl_c_der,base64]`: the leaf only. */
function haproxyHeader(cert: Issued): string {
  return cert.der.toString('base64');
}

function boundClaims(cert: Issued, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return {
    iss: idp.issuer, sub: 'svc', azp: 'mtls-client', typ: 'Bearer', iat: now, exp: now + 300,
    scope: 'openid profile', cnf: { 'x5t#S256': thumbprintS256(cert.der) }, ...extra,
  };
}

async function facts(token: string | null, certHeader: string | null, extra: Partial<RequestFacts> = {}): Promise<RequestFacts> {
  return {
    authorization: token === null ? [] : [`Bearer ${token}`],
    certificateHeader: certHeader === null ? [] : [certHeader],
    peerTrusted: true,
    host: 'api.example',
    ...extra,
  };
}

function denied(decision: Decision): { status: number; reason: string; challenge: string } {
  assert.equal(decision.allow, false, 'expected a rejection');
  if (decision.allow) throw new Error('unreachable');
  return {
    status: decision.response.status,
    reason: decision.failure.reason,
    challenge: decision.response.headers['WWW-Authenticate'] ?? '',
  };
}

describe('verifier: the whole decision', () => {
  test('HAProxy base64 leaf (intermediate missing) is certificate_untrusted; leaf directly under the root passes', async () => {
    const verifier = new Verifier(config());
    const viaIntermediate = await verifier.verify(await facts(await idp.sign(boundClaims(pki.client)), haproxyHeader(pki.client)));
    assert.equal(denied(viaIntermediate).reason, 'certificate_untrusted');
    const direct = await verifier.verify(await facts(await idp.sign(boundClaims(pki.directClient)), haproxyHeader(pki.directClient)));
    assert.equal(direct.allow, true);
    assert.ok(direct.allow);
    assert.equal(direct.certificate?.thumbprint, thumbprintS256(pki.directClient.der));
    assert.equal(direct.claims['sub'], 'svc');
  });

  test('a configured intermediate completes the path to a configured root; alone it needs allow_partial_chain', async () => {
    const both = new Verifier(config({}, { ca_certificates_pem: [pki.root.pem, pki.intermediate.pem] }));
    const viaStore = await both.verify(await facts(await idp.sign(boundClaims(pki.client)), haproxyHeader(pki.client)));
    assert.equal(viaStore.allow, true);
    const alone = new Verifier(config({}, { ca_certificates_pem: [pki.intermediate.pem] }));
    const refused = await alone.verify(await facts(await idp.sign(boundClaims(pki.client)), haproxyHeader(pki.client)));
    assert.equal(denied(refused).reason, 'certificate_untrusted');
    const partial = new Verifier(config({}, { ca_certificates_pem: [pki.intermediate.pem], allow_partial_chain: true }));
    const accepted = await partial.verify(await facts(await idp.sign(boundClaims(pki.client)), haproxyHeader(pki.client)));
    assert.equal(accepted.allow, true);
  });

  test('nginx escaped PEM with chain passes', async () => {
    const verifier = new Verifier(config({}, { certificate_header_format: 'url_encoded' }));
    const header = encodeURIComponent(pki.client.pem + pki.intermediate.pem);
    const decision = await verifier.verify(await facts(await idp.sign(boundClaims(pki.client)), header));
    assert.equal(decision.allow, true);
  });

  test('Traefik comma-separated base64 chain passes', async () => {
    const verifier = new Verifier(config());
    const header = `${pki.client.der.toString('base64')},${pki.intermediate.der.toString('base64')}`;
    const decision = await verifier.verify(await facts(await idp.sign(boundClaims(pki.client)), header));
    assert.equal(decision.allow, true);
  });

  test('RFC 9440 Client-Cert with Client-Cert-Chain passes', async () => {
    const verifier = new Verifier(config({}, {
      certificate_header_format: 'rfc9440', certificate_header_name: 'client-cert', certificate_chain_header_name: 'client-cert-chain',
    }));
    const decision = await verifier.verify(await facts(await idp.sign(boundClaims(pki.client)), `:${pki.client.der.toString('base64')}:`, {
      certificateChainHeader: [`:${pki.intermediate.der.toString('base64')}:`],
    }));
    assert.equal(decision.allow, true);
  });

  test('token bound to another certificate gets 401 invalid_token', async () => {
    const verifier = new Verifier(config());
    const stolen = await idp.sign(boundClaims(pki.otherClient));
    const decision = await verifier.verify(await facts(stolen, `${haproxyHeader(pki.client)},${haproxyHeader(pki.intermediate)}`));
    assert.deepEqual(denied(decision), {
      status: 401,
      reason: 'certificate_thumbprint_mismatch',
      challenge: 'Bearer realm="api.example", error="invalid_token", error_description="the client certificate thumbprint does not match the x5t#S256 claim"',
    });
  });

  test('no token at all: 401 with a bare challenge (RFC 6750 3.1), before any certificate work', async () => {
    const verifier = new Verifier(config());
    assert.deepEqual(denied(await verifier.verify(await facts(null, 'garbage'))),
      { status: 401, reason: 'token_missing', challenge: 'Bearer realm="api.example"' });
  });

  test('strict: valid token but no certificate header gets certificate_missing', async () => {
    const verifier = new Verifier(config());
    const decision = await verifier.verify(await facts(await idp.sign(boundClaims(pki.client)), null));
    assert.equal(denied(decision).reason, 'certificate_missing');
  });

  test('certificate header from an untrusted peer is ignored and noted', async () => {
    const verifier = new Verifier(config({}, { ca_certificates_pem: [pki.root.pem, pki.intermediate.pem], allow_partial_chain: true }));
    const decision = await verifier.verify(await facts(await idp.sign(boundClaims(pki.client)), haproxyHeader(pki.client),
      { peerTrusted: false }));
    assert.equal(denied(decision).reason, 'certificate_missing');
    assert.deepEqual(decision.notes, ['certificate_header_ignored_untrusted_peer']);
  });

  test('secure_source false reads the header from any peer (the seed config)', async () => {
    const verifier = new Verifier(config({}, { secure_source: false }));
    const decision = await verifier.verify(await facts(await idp.sign(boundClaims(pki.directClient)), haproxyHeader(pki.directClient),
      { peerTrusted: false }));
    assert.equal(decision.allow, true);
  });

  test('two certificate headers are rejected', async () => {
    const verifier = new Verifier(config());
    const decision = await verifier.verify(await facts(await idp.sign(boundClaims(pki.directClient)), null,
      { certificateHeader: [haproxyHeader(pki.directClient), haproxyHeader(pki.directClient)] }));
    assert.equal(denied(decision).reason, 'certificate_header_multiple');
  });

  test('headers the gateway may have cut off: 400 invalid_request, even for a pair it approved before', async () => {
    const verifier = new Verifier(config());
    const good = await facts(await idp.sign(boundClaims(pki.directClient)), haproxyHeader(pki.directClient));
    assert.equal((await verifier.verify(good)).allow, true);
    const decision = await verifier.verify({ ...good, headersTruncated: true });
    assert.deepEqual(denied(decision), {
      status: 400, reason: 'request_headers_too_many',
      challenge: 'Bearer realm="api.example", error="invalid_request", error_description="the request has too many header lines"',
    });
    assert.equal((await verifier.verify({ ...good, headersTruncated: false })).allow, true);
  });

  test('strict: an unbound token is token_not_bound', async () => {
    const verifier = new Verifier(config());
    const claims = boundClaims(pki.directClient);
    delete claims['cnf'];
    const decision = await verifier.verify(await facts(await idp.sign(claims), haproxyHeader(pki.directClient)));
    assert.equal(denied(decision).reason, 'token_not_bound');
  });

  test('optional: unbound token passes without certificate; bound token still needs the right one', async () => {
    const verifier = new Verifier(config({ proof_of_possession_mtls: 'optional' }));
    const unbound = boundClaims(pki.directClient);
    delete unbound['cnf'];
    const plain = await verifier.verify(await facts(await idp.sign(unbound), null));
    assert.equal(plain.allow, true);
    assert.ok(plain.allow && plain.certificate === null);
    const bound = await verifier.verify(await facts(await idp.sign(boundClaims(pki.directClient)), null));
    assert.equal(denied(bound).reason, 'certificate_missing');
    const good = await verifier.verify(await facts(await idp.sign(boundClaims(pki.directClient)), haproxyHeader(pki.directClient)));
    assert.equal(good.allow, true);
  });

  test('off: an unbound token passes; a certificate-bound one is refused (token_cnf_unsupported), with or without its certificate', async () => {
    const verifier = new Verifier(config({ proof_of_possession_mtls: 'off' }));
    const unbound = boundClaims(pki.client);
    delete unbound['cnf'];
    assert.equal((await verifier.verify(await facts(await idp.sign(unbound), null))).allow, true);
    const decision = await verifier.verify(await facts(await idp.sign(boundClaims(pki.client)), null));
    assert.equal(denied(decision).reason, 'token_cnf_unsupported');
    const withCert = await verifier.verify(await facts(await idp.sign(boundClaims(pki.directClient)), haproxyHeader(pki.directClient)));
    assert.equal(denied(withCert).reason, 'token_cnf_unsupported');
  });

  test('a token bound by a confirmation the plugin cannot check (DPoP jkt, jwk, x5t#S256 next to jkt) is refused in every mode', async () => {
    const unchecked: Array<Record<string, unknown>> = [
      { jkt: '0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I' },
      { jwk: { kty: 'EC', crv: 'P-256', x: 'a', y: 'b' } },
      { 'x5t#S256': thumbprintS256(pki.directClient.der), jkt: '0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I' },
    ];
    for (const mode of ['strict', 'optional', 'off'] as const) {
      const verifier = new Verifier(config({ proof_of_possession_mtls: mode }));
      for (const cnf of unchecked) {
        const decision = await verifier.verify(await facts(await idp.sign(boundClaims(pki.directClient, { cnf })), haproxyHeader(pki.directClient)));
        assert.equal(denied(decision).reason, 'token_cnf_unsupported', `${mode} ${JSON.stringify(cnf)}`);
        assert.equal(decision.allow === false && decision.response.status, 401);
      }
      const empty = await verifier.verify(await facts(await idp.sign(boundClaims(pki.directClient, { cnf: {} })), haproxyHeader(pki.directClient)));
      assert.equal(denied(empty).reason, 'token_cnf_malformed', `${mode} empty cnf`);
    }
  });

  test('malformed cnf is invalid_token', async () => {
    const verifier = new Verifier(config());
    const decision = await verifier.verify(await facts(await idp.sign(boundClaims(pki.directClient, { cnf: ['x'] })),
      haproxyHeader(pki.directClient)));
    assert.equal(denied(decision).reason, 'token_cnf_malformed');
  });

  test('scopes_required missing: 403 insufficient_scope', async () => {
    const verifier = new Verifier(config({ scopes_required: ['payments:write'] }));
    const decision = await verifier.verify(await facts(await idp.sign(boundClaims(pki.directClient)), haproxyHeader(pki.directClient)));
    const result = denied(decision);
    assert.equal(result.status, 403);
    assert.equal(result.reason, 'scope_insufficient');
    assert.match(result.challenge, /error="insufficient_scope"/);
  });

  test('certificate from a rogue CA with a token bound to it gets certificate_untrusted', async () => {
    const verifier = new Verifier(config());
    const decision = await verifier.verify(await facts(await idp.sign(boundClaims(pki.rogueClient)), haproxyHeader(pki.rogueClient)));
    assert.equal(denied(decision).reason, 'certificate_untrusted');
  });

  test('Kong CA entity UUIDs without the Kong adapter fail closed', async () => {
    const verifier = new Verifier(config({}, { ca_certificates: ['3f2b6a1e-7c4d-4e8a-9b1f-2d5c6e7f8a90'] }));
    const decision = await verifier.verify(await facts(await idp.sign(boundClaims(pki.directClient)), haproxyHeader(pki.directClient)));
    assert.equal(denied(decision).reason, 'trust_anchors_unavailable');
  });

  test('JWKS endpoint down: invalid_token jwks_unavailable, never a pass', async () => {
    const down = await startJwksServer();
    const token = await down.sign({ ...boundClaims(pki.directClient), iss: down.issuer });
    const verifier = new Verifier(config({ issuer: down.issuer }));
    down.jwksMode = 'status500';
    const decision = await verifier.verify(await facts(token, haproxyHeader(pki.directClient)));
    assert.equal(denied(decision).reason, 'jwks_unavailable');
    await down.close();
  });

  test('display_errors puts the reason in the body; the token and certificate never appear anywhere', async () => {
    const verifier = new Verifier(config({ display_errors: true }));
    const token = await idp.sign(boundClaims(pki.otherClient));
    const header = haproxyHeader(pki.directClient);
    const decision = await verifier.verify(await facts(token, header));
    assert.ok(!decision.allow);
    assert.equal(decision.response.body.message,
      'Unauthorized (certificate_thumbprint_mismatch: the client certificate thumbprint does not match the x5t#S256 claim)');
    const everything = JSON.stringify(decision);
    assert.ok(!everything.includes(token.split('.')[2] ?? 'x'), 'token signature leaked');
    assert.ok(!everything.includes(header.slice(0, 40)), 'certificate leaked');
  });

  test('PEM anchor text with several blocks in one string is accepted', async () => {
    const verifier = new Verifier(config({}, { ca_certificates_pem: [pki.rogueRoot.pem + toPem(pki.root.der)] }));
    const decision = await verifier.verify(await facts(await idp.sign(boundClaims(pki.directClient)), haproxyHeader(pki.directClient)));
    assert.equal(decision.allow, true);
  });
});
