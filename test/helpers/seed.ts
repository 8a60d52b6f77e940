/**
 * The seed configuration: Kong Enterprise openid-connect's mTLS-from-header how-to, as an operator
 * writes it today (reference-behaviour.md), with the plugin name changed to mtls-pop.
 */
export const SEED_CA_UUID = '3f2b6a1e-7c4d-4e8a-9b1f-2d5c6e7f8a90';

export function seedConfig(): Record<string, unknown> {
  return {
    issuer: 'http://localhost:8080/realms/master',
    jwks_endpoint: 'http://keycloak:8080/realms/master/protocol/openid-connect/certs',
    auth_methods: ['bearer'],
    proof_of_possession_mtls: 'strict',
    proof_of_possession_auth_methods_validation: true,
    proof_of_possession_mtls_from_header: {
      certificate_header_name: 'x-client-cert',
      certificate_header_format: 'base64_encoded',
      ca_certificates: [SEED_CA_UUID],
      ssl_verify: true,
      secure_source: false,
    },
    cache_tokens_salt: 'c2VlZC1zYWx0LXJhbmRvbQ',
  };
}

/**
 * The config most tests start from: strict mode, HAProxy's base64 header `x-client-cert`,
 * revocation off, and the given trust (`trust` goes into the header record). `extra` overrides
 * top-level keys, `header` the `proof_of_possession_mtls_from_header` record.
 */
function strictConfig(
  issuer: string, trust: Record<string, unknown>, extra: Record<string, unknown>, header: Record<string, unknown>,
): Record<string, unknown> {
  return {
    issuer,
    proof_of_possession_mtls: 'strict',
    proof_of_possession_mtls_from_header: {
      certificate_header_name: 'x-client-cert',
      certificate_header_format: 'base64_encoded',
      ...trust,
      revocation_check_mode: 'SKIP',
      ...header,
    },
    ...extra,
  };
}

/** Strict config trusting one PEM anchor (the core tests). */
export function strictPemConfig(
  issuer: string, anchorPem: string, extra: Record<string, unknown> = {}, header: Record<string, unknown> = {},
): Record<string, unknown> {
  return strictConfig(issuer, { ca_certificates_pem: [anchorPem] }, extra, header);
}

/** Strict config trusting one Kong CA certificate entity, read from the given Admin API (the plugin tests). */
export function strictEntityConfig(
  issuer: string, caUuid: string, adminApiUrl: string, extra: Record<string, unknown> = {}, header: Record<string, unknown> = {},
): Record<string, unknown> {
  return strictConfig(issuer, { ca_certificates: [caUuid] }, { admin_api_url: adminApiUrl, ...extra }, header);
}
