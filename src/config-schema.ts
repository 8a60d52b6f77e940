/**
 * The plugin's configuration schema, written once as data in Kong's schema syntax.
 *
 * The same table serves two readers: the Kong adapter exports it as the plugin's `Schema` (Kong
 * validates it with its MetaSubSchema and fills defaults), and `config.ts` interprets it to
 * validate and default a config in the core, so tests, the CLI and the plugin agree on one
 * definition. Key names follow Kong Enterprise's openid-connect plugin wherever it has the
 * setting, so an operator can keep their config.
 */

/** A field definition in Kong's schema syntax (the subset this plugin uses). */
export type SchemaField =
  | { type: 'string'; required?: boolean; default?: string | null; one_of?: readonly string[];
      len_min?: number; referenceable?: boolean; encrypted?: boolean; uuid?: boolean; description?: string }
  | { type: 'number' | 'integer'; required?: boolean; default?: number | null; between?: readonly [number, number];
      gt?: number; description?: string }
  | { type: 'boolean'; required?: boolean; default?: boolean | null; description?: string }
  | { type: 'array' | 'set'; required?: boolean; default?: readonly unknown[] | null; elements: SchemaField;
      len_min?: number; description?: string }
  | { type: 'record'; required?: boolean; default?: Record<string, unknown> | null; fields: SchemaFields;
      description?: string };

/** Kong's record field list: an array of single-key objects, in order. */
export type SchemaFields = ReadonlyArray<Readonly<Record<string, SchemaField>>>;

export const POP_MODES = ['off', 'optional', 'strict'] as const;
export const HEADER_FORMATS = ['base64_encoded', 'url_encoded', 'pem', 'xfcc', 'rfc9440'] as const;
export const AUTH_METHODS = [
  'password', 'client_credentials', 'authorization_code', 'bearer', 'introspection', 'userinfo',
  'kong_oauth2', 'refresh_token', 'session',
] as const;
/** Asymmetric JWS algorithms (RFC 7518 section 3, RFC 8037); `none` and HS* are never allowed. */
export const ASYMMETRIC_ALGORITHMS = [
  'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519',
] as const;
export const REVOCATION_MODES = ['SKIP', 'IGNORE_CA_ERROR', 'STRICT'] as const;
/** Kong openid-connect `consumer_by`. */
export const CONSUMER_BY = ['id', 'username', 'custom_id'] as const;

const pemList = (description: string): SchemaField => ({
  type: 'array', default: [], elements: { type: 'string', referenceable: true }, description,
});

/** `proof_of_possession_mtls_from_header`: where the terminator puts the certificate and what to trust. */
export const FROM_HEADER_FIELDS: SchemaFields = [
  { certificate_header_name: { type: 'string', required: true, len_min: 1,
      description: 'Request header carrying the client certificate, set by the TLS terminator.' } },
  { certificate_header_format: { type: 'string', required: true, default: 'url_encoded', one_of: HEADER_FORMATS,
      description: 'base64_encoded (HAProxy, Traefik, Cloudflare), url_encoded (nginx, AWS ALB), pem, xfcc (Envoy/Istio), rfc9440.' } },
  { certificate_chain_header_name: { type: 'string',
      description: 'rfc9440 only: header with the intermediates as a byte-sequence list (Client-Cert-Chain).' } },
  { xfcc_element_count: { type: 'integer', required: true, default: 1, between: [1, 16],
      description: 'xfcc only: exact number of elements the proxies write (1: the client-facing Envoy uses SANITIZE_SET and nothing appends; n: n-1 APPEND_FORWARD hops follow it). The first element is used; any other count is refused.' } },
  { ca_certificates: { type: 'array', default: [], elements: { type: 'string', uuid: true },
      description: 'UUIDs of Kong CA certificate entities trusted to issue client certificates. Read through the Admin API and cached 60 s; during an Admin API outage the last copy serves 5 more minutes (retries back off 1-5 s); a deleted entity (404) is dropped at once.' } },
  { ca_certificates_pem: pemList('PEM trust anchors (vault references allowed), in addition to ca_certificates.') },
  { secure_source: { type: 'boolean', required: true, default: true,
      description: 'Read the header only when the direct peer is in Kong trusted_ips.' } },
  { ssl_verify: { type: 'boolean', required: true, default: true,
      description: 'Verify TLS of revocation responders (OCSP/CRL).' } },
  { allow_partial_chain: { type: 'boolean', required: true, default: false,
      description: 'Accept a path that ends at a configured intermediate certificate.' } },
  { max_header_size: { type: 'integer', required: true, default: 32768, between: [256, 1048576],
      description: 'Largest accepted certificate header, in bytes.' } },
  { max_chain_length: { type: 'integer', required: true, default: 10, between: [1, 64],
      description: 'Most certificates accepted in the header, leaf included.' } },
  { cert_cache_ttl: { type: 'number', required: true, default: 60000, between: [0, 86400000],
      description: 'Milliseconds a certificate-chain verdict is cached (never past the leaf notAfter).' } },
  { revocation_check_mode: { type: 'string', required: true, default: 'IGNORE_CA_ERROR', one_of: REVOCATION_MODES,
      description: 'SKIP, IGNORE_CA_ERROR (reject only certificates proven revoked) or STRICT.' } },
  { http_timeout: { type: 'number', required: true, default: 30000, between: [1, 600000],
      description: 'Milliseconds allowed for each revocation responder request.' } },
  { ocsp_responder_url: { type: 'string',
      description: 'OCSP responder used instead of the one named in the certificate (AIA).' } },
  { revocation_check_whole_chain: { type: 'boolean', required: true, default: false,
      description: 'Check every certificate of the path that carries revocation info, not only the leaf.' } },
  { revocation_max_age: { type: 'integer', required: true, default: 86400, between: [60, 2592000],
      description: 'Seconds an OCSP response or CRL without nextUpdate counts as current after its thisUpdate (RFC 6960 3.2); older answers are no answer.' } },
  { http_proxy_host: { type: 'string', description: 'HTTP proxy for plain-http revocation responders.' } },
  { http_proxy_port: { type: 'integer', between: [1, 65535], description: 'Port of http_proxy_host.' } },
];

/** One `upstream_headers` entry: the upstream header and where its value comes from. */
export const UPSTREAM_HEADER_FIELDS: SchemaFields = [
  { header: { type: 'string', required: true, len_min: 1, description: 'Upstream request header name.' } },
  { path: { type: 'string', required: true, len_min: 1, description: 'Claim path or cert.<fact>.' } },
];

/** The whole config record, top-level keys in Kong openid-connect order where shared. */
export const CONFIG_FIELDS: SchemaFields = [
  { issuer: { type: 'string', description: 'The OpenID Connect issuer; discovery at issuer + /.well-known/openid-configuration.' } },
  { jwks_endpoint: { type: 'string', description: 'JWKS URL; when unset it is discovered from issuer.' } },
  { issuers_allowed: { type: 'array', elements: { type: 'string' },
      description: 'Accepted iss values; defaults to issuer.' } },
  { audience_required: { type: 'array', elements: { type: 'string' },
      description: 'The token aud must contain one of these.' } },
  { scopes_required: { type: 'array', elements: { type: 'string' },
      description: 'Each entry is a space-separated set that must all be present; entries are alternatives.' } },
  { leeway: { type: 'number', required: true, default: 0, between: [0, 3600],
      description: 'Seconds of clock skew allowed for exp and nbf.' } },
  { auth_methods: { type: 'array', required: true, default: ['bearer'], elements: { type: 'string', one_of: AUTH_METHODS },
      description: 'Only bearer is implemented.' } },
  { signing_algorithms: { type: 'array', required: true, default: [...ASYMMETRIC_ALGORITHMS],
      elements: { type: 'string', one_of: ASYMMETRIC_ALGORITHMS }, len_min: 1,
      description: 'Accepted JWS algorithms (asymmetric only).' } },
  { proof_of_possession_mtls: { type: 'string', required: true, default: 'strict', one_of: POP_MODES,
      description: 'strict: every token bound to the certificate; optional: only tokens with cnf; off.' } },
  { proof_of_possession_auth_methods_validation: { type: 'boolean', required: true, default: true,
      description: 'Reject auth_methods that cannot carry proof of possession.' } },
  { proof_of_possession_mtls_from_header: { type: 'record', required: false, fields: FROM_HEADER_FIELDS } },
  { cache_tokens_salt: { type: 'string', description: 'Salt for token cache keys (tokens are never stored in clear as keys).' } },
  { cache_ttl: { type: 'number', required: true, default: 600, between: [0, 86400],
      description: 'Seconds a token verdict is cached (never past exp).' } },
  { cache_size: { type: 'integer', required: true, default: 10000, between: [0, 1000000],
      description: 'Most entries of each verifier cache: token verdicts, certificate verdicts, approved decisions, thumbprint-mismatch refusals.' } },
  { display_errors: { type: 'boolean', required: true, default: false,
      description: 'Append the failure reason and detail to the response body message and use the detail as error_description; off: a fixed error_description per reason, the detail only in the log.' } },
  { unauthorized_error_message: { type: 'string', required: true, default: 'Unauthorized' } },
  { forbidden_error_message: { type: 'string', required: true, default: 'Forbidden' } },
  { realm: { type: 'string', description: 'WWW-Authenticate realm; defaults to the request host.' } },
  { timeout: { type: 'number', required: true, default: 10000, between: [1, 600000],
      description: 'Milliseconds allowed for discovery and JWKS requests.' } },
  { rediscovery_lifetime: { type: 'number', required: true, default: 30, between: [0, 86400],
      description: 'Least seconds between JWKS refetches triggered by an unknown kid.' } },
  { ssl_verify: { type: 'boolean', required: true, default: true, description: 'Verify the IdP TLS certificate.' } },
  { idp_ca_certificates_pem: pemList('Extra PEM CA certificates trusted for the IdP TLS connection.') },
  { admin_api_url: { type: 'string', required: true, default: 'http://127.0.0.1:8001',
      description: 'Kong Admin API, used to read ca_certificates entities.' } },
  { upstream_headers: { type: 'array', default: [], elements: { type: 'record', fields: UPSTREAM_HEADER_FIELDS },
      description: 'Upstream request headers set from verified values: {header, path}; path is a claim path (sub, realm_access.roles) or cert.subject, cert.san, cert.thumbprint, cert.issuer, cert.serial. Client-sent copies are always removed.' } },
  { hide_credentials: { type: 'boolean', required: true, default: false,
      description: 'Remove the Authorization header from the upstream request.' } },
  { hide_certificate_header: { type: 'boolean', required: true, default: false,
      description: 'Remove the certificate header (and the chain header) from the upstream request.' } },
  { consumer_claim: { type: 'array', elements: { type: 'string', len_min: 1 },
      description: 'Claim whose value names the Kong consumer of a verified request; several names are a path into nested objects (Kong openid-connect). Unset: no consumer mapping.' } },
  { consumer_by: { type: 'array', required: true, default: ['username', 'custom_id'], len_min: 1,
      elements: { type: 'string', one_of: CONSUMER_BY },
      description: 'Consumer fields compared with the consumer_claim value, in order; the first match wins. custom_id is looked up through the Admin API.' } },
  { consumer_optional: { type: 'boolean', required: true, default: false,
      description: 'Let a verified request through without a consumer when none matches (else 403 consumer_not_found).' } },
  { anonymous: { type: 'string', len_min: 1,
      description: 'Consumer id or username used when consumer_claim matches no consumer (X-Anonymous-Consumer: true). Never used for a request that failed verification.' } },
  { log_serialize: { type: 'boolean', required: true, default: false,
      description: 'Record each decision (result, reason, certificate thumbprint and subject) for Kong log plugins under mtls_pop; one more PDK round trip per request.' } },
];
