/**
 * Inputs shared by the benchmark sections: a test PKI (root -> intermediate -> EC P-256 leaves),
 * a JWKS server on 127.0.0.1 with RS256 and ES256 keys, Keycloak-shaped certificate-bound access
 * tokens, the HAProxy header (`%[ssl_c_der,base64],%[ssl_c_chain_der,base64]`: leaf, then the
 * intermediate) and the plugin config. Not a test file.
 */
import { parseConfig, type MtlsPopConfig } from '../../src/config.js';
import { thumbprintS256 } from '../../src/certificate.js';
import { issue, makeTestPki, type Issued, type TestPki } from '../helpers/pki.js';
import { startJwksServer, type JwksServer, type TestKey } from '../helpers/jwks-server.js';

export const AUDIENCE = 'bench-api';
export const CERT_HEADER = 'x-client-cert';

export interface BenchInputs {
  readonly pki: TestPki;
  readonly idp: JwksServer;
  readonly rsaKey: TestKey;
  readonly ecKey: TestKey;
  close(): Promise<void>;
}

export async function makeInputs(): Promise<BenchInputs> {
  const pki = await makeTestPki();
  const idp = await startJwksServer({ algs: ['RS256', 'ES256'] });
  const [rsaKey, ecKey] = idp.keys as [TestKey, TestKey];
  return { pki, idp, rsaKey, ecKey, close: () => idp.close() };
}

let jti = 0;

/** A Keycloak-style client-credentials access token bound to `cert` (RFC 8705 3.1), signed with `key`. */
export function boundToken(inputs: BenchInputs, cert: Issued, key: TestKey, lifetimeS = 3600): string {
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    exp: now + lifetimeS, iat: now, jti: `bench-${process.pid}-${++jti}`, iss: inputs.idp.issuer, aud: AUDIENCE,
    sub: '3c1a5d0e-7f1b-4e8e-9a55-0d6f1c2b7a90', typ: 'Bearer', azp: 'bench-client', acr: '1',
    'allowed-origins': ['/*'], realm_access: { roles: ['default-roles-test', 'offline_access'] },
    scope: 'profile email', clientHost: '10.0.0.7', preferred_username: 'service-account-bench-client',
    client_id: 'bench-client', cnf: { 'x5t#S256': thumbprintS256(cert.der) },
  };
  return inputs.idp.signRaw({ alg: key.alg, typ: 'JWT', kid: key.kid }, claims, key);
}

/** HAProxy `%[ssl_c_der,base64],%[ssl_c_chain_der,base64]`: the leaf, then the intermediate. */
export function haproxyHeader(inputs: BenchInputs, leaf: Issued): string {
  return `${leaf.der.toString('base64')},${inputs.pki.intermediate.der.toString('base64')}`;
}

/** Fresh client certificates under the intermediate (EC P-256, clientAuth). */
export async function issueClients(inputs: BenchInputs, count: number, label: string): Promise<Issued[]> {
  const out: Issued[] = [];
  for (let i = 0; i < count; i++) {
    out.push(await issue({ subject: `CN=bench-${label}-${i}, O=mtls-pop bench`, issuer: inputs.pki.intermediate }));
  }
  return out;
}

/** The plugin config of the benchmarks: strict PoP, HAProxy base64 header, PEM root, no revocation. */
export function benchConfigInput(inputs: BenchInputs, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    issuer: inputs.idp.issuer,
    audience_required: [AUDIENCE],
    proof_of_possession_mtls: 'strict',
    proof_of_possession_mtls_from_header: {
      certificate_header_name: CERT_HEADER,
      certificate_header_format: 'base64_encoded',
      ca_certificates_pem: [inputs.pki.root.pem],
      revocation_check_mode: 'SKIP',
    },
    ...extra,
  };
}

export function benchConfig(inputs: BenchInputs, extra: Record<string, unknown> = {}): MtlsPopConfig {
  const parsed = parseConfig(benchConfigInput(inputs, extra));
  if (!parsed.ok) throw new Error(`bench config invalid: ${parsed.errors.join('; ')}`);
  return parsed.config;
}

/** The leaf DER from a HAProxy header, as a minimal consumer of the header would get it. */
export function leafDerFromHaproxy(header: string): Buffer {
  const comma = header.indexOf(',');
  return Buffer.from(comma < 0 ? header : header.slice(0, comma), 'base64');
}
