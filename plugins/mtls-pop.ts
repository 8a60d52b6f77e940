/**
 * mtls-pop: the Kong adapter, in the role of a Kong plugin's handler.lua.
 *
 * Access phase: read the request facts through the PDK (one `get_headers`, and the peer's trust
 * only when a certificate header is present), ask the verifier core, then either mark the request
 * verified (`kong.ctx.shared.mtls_pop_verified = true`, which the fail-closed guard checks) or end
 * it with the core's 400/401/403. It never throws back into the plugin server: kong-pdk answers a
 * thrown handler with "ret" and Kong would proxy the request.
 *
 * On approval, before the flag: one `kong.service.request.set_headers` when identity headers or
 * hidden headers are configured, and one `kong.log.set_serialize_value` with `log_serialize`
 * (also before a rejection's exit); see kong/upstream.ts.
 *
 * Every request also counts in the process's Prometheus counters (kong/metrics.ts): its outcome
 * and reason code, and the cache and JWKS figures that changed. No PDK round trip.
 */
import { hash } from 'node:crypto';
import { CONFIG_FIELDS } from '../src/config-schema.js';
import { parseConfig, type MtlsPopConfig } from '../src/config.js';
import { Verifier, jwksOptionsFrom, type Decision, type RequestFacts } from '../src/verifier.js';
import { JwksSource } from '../src/jwks.js';
import { failure, type AuthFailure } from '../src/errors.js';
import { toHttpResponse } from '../src/response.js';
import { BoundedCache } from '../src/cache.js';
import { KongCaCertificates, kongTrustAnchors } from '../kong/ca-certificates.js';
import { RateLimitedLog, logSafe } from '../kong/log.js';
import type { KongHeaders, KongPdk } from '../kong/pdk.js';
import { SERIALIZE_KEY, allowRecord, denyRecord, upstreamPlanFrom } from '../kong/upstream.js';
import type { UpstreamHeaderPlan } from '../src/upstream-headers.js';
import { metrics, cacheTracker, jwksTracker, type RequestOutcome } from '../kong/metrics.js';
import { consumerClaimPath, consumerHeaders, mapConsumer } from '../kong/consumer.js';
import { packageVersion } from '../src/package-info.js';

/** The `kong.ctx.shared` key set on success; the bundled post-function guard rejects requests without it. */
export const VERIFIED_FLAG = 'mtls_pop_verified';

/** Kong's `get_headers` returns at most this many headers (its own upper bound is 1000). */
const MAX_HEADERS = 1000;

/** Cache of `kong.ip.is_trusted` answers per peer address (trusted_ips only changes with a Kong reload). */
const TRUST_CACHE_TTL_MS = 60_000;

/** Header lines in a `get_headers` table: `MAX_HEADERS` of them means Kong may have cut the rest. */
function headerLineCount(headers: KongHeaders | null): number {
  let count = 0;
  for (const value of Object.values(headers ?? {})) count += Array.isArray(value) ? value.length : 1;
  return count;
}

function headerValues(headers: KongHeaders | null, name: string): readonly string[] {
  const value = headers?.[name.toLowerCase()];
  if (value === undefined) return [];
  return typeof value === 'string' ? [value] : value.filter((v): v is string => typeof v === 'string');
}

const log = new RateLimitedLog();

/** Cache and JWKS figures seen per verifier and per JWKS source, added to the process counters. */
const cacheFigures = cacheTracker();
const jwksFigures = jwksTracker();

/**
 * JWKS sources and CA certificate resolvers outlive plugin instances. kong-pdk drops an instance
 * after 60 s without events (lib/mod.js `isExpired`) and Kong starts a new one on the next
 * request: with per-instance sources, a quiet route would run discovery, the JWKS fetch and the
 * Admin API reads again after every idle minute, and during an IdP or Admin API outage it would
 * lose keys and CAs fetched a minute earlier, cutting their stale periods short. Kept per plugin
 * entity (`__plugin_id`, which Kong adds to the config) and the exact settings that shape the
 * fetch, so an instance restart or a config reload finds them again while different plugins or
 * settings never share; bounded LRU.
 */
const SHARED_SOURCES = 256;
const FOREVER_MS = 1e15;
const jwksSources = new BoundedCache<JwksSource>({ maxEntries: SHARED_SOURCES, ttlMs: FOREVER_MS });
const caResolvers = new BoundedCache<KongCaCertificates>({ maxEntries: SHARED_SOURCES, ttlMs: FOREVER_MS });

function shared<V>(cache: BoundedCache<V>, pluginId: unknown, settings: unknown, create: () => V): V {
  const key = hash('sha256', JSON.stringify([typeof pluginId === 'string' ? pluginId : null, settings]), 'base64');
  const existing = cache.get(key);
  if (existing !== undefined) return existing;
  const created = create();
  cache.set(key, created);
  return created;
}

type InstanceState =
  | { readonly ready: true; readonly config: MtlsPopConfig; readonly verifier: Verifier; readonly jwks: JwksSource }
  | { readonly ready: false; readonly errors: readonly string[] };

function start(rawConfig: unknown): InstanceState {
  try {
    const parsed = parseConfig(rawConfig);
    if (!parsed.ok) return { ready: false, errors: parsed.errors };
    const config = parsed.config;
    const pluginId = (rawConfig as Record<string, unknown>)['__plugin_id'];
    const ids = config.proof_of_possession_mtls_from_header?.ca_certificates ?? [];
    const caOptions = { adminApiUrl: config.admin_api_url, timeoutMs: config.timeout };
    const entities = ids.length === 0
      ? null
      : shared(caResolvers, pluginId, { ids, ...caOptions }, () => new KongCaCertificates(ids, caOptions));
    const jwksOptions = jwksOptionsFrom(config);
    const jwks = shared(jwksSources, pluginId, jwksOptions, () => new JwksSource(jwksOptions));
    const verifier = new Verifier(config, { trustAnchors: kongTrustAnchors(config, entities), jwks });
    return { ready: true, config, verifier, jwks };
  } catch (error) {
    return { ready: false, errors: [`plugin start failed: ${error instanceof Error ? error.message : String(error)}`] };
  }
}

class MtlsPopPlugin {
  readonly #state: InstanceState;
  readonly #trustedPeers = new BoundedCache<boolean>({ maxEntries: 4096, ttlMs: TRUST_CACHE_TTL_MS });
  /** Headers set or removed upstream on approval (one set_headers call); null: none. */
  readonly #upstream: UpstreamHeaderPlan | null;

  constructor(config: unknown) {
    this.#state = start(config);
    this.#upstream = this.#state.ready ? upstreamPlanFrom(this.#state.config) : null;
    if (!this.#state.ready) {
      log.log('error', 'config', `invalid configuration, every request will be rejected: ${logSafe(this.#state.errors.join('; '), 2000)}`);
    }
  }

  async access(kong: KongPdk): Promise<void> {
    let outcome: RequestOutcome = { outcome: 'deny', reason: 'internal_error' };
    try {
      outcome = await this.#access(kong);
    } catch (error) {
      // A PDK call failed (kong-pdk throws on StepError) or a bug: reject, never proxy.
      outcome = { outcome: 'deny', reason: 'internal_error' };
      const name = error instanceof Error ? error.name : typeof error;
      log.log('error', 'internal', `unexpected ${logSafe(name)} in access phase; request rejected`);
      await this.#reject(kong, failure('internal_error', 'the request could not be verified'), null, null);
    } finally {
      metrics.countRequest(outcome);
    }
  }

  /** Cache and JWKS figures changed by the last verification, into the process counters. */
  #sampleFigures(): void {
    if (!this.#state.ready) return;
    cacheFigures.observe(this.#state.verifier, this.#state.verifier.stats());
    jwksFigures.observe(this.#state.jwks, this.#state.jwks.stats());
  }

  async #access(kong: KongPdk): Promise<RequestOutcome> {
    const state = this.#state;
    if (!state.ready) {
      log.log('error', 'config', `invalid configuration: ${logSafe(state.errors.join('; '), 2000)}`);
      await this.#reject(kong, failure('internal_error', 'the plugin is misconfigured'), null, null);
      return { outcome: 'deny', reason: 'internal_error' };
    }
    const { config, verifier } = state;
    const headers = await kong.request.getHeaders(MAX_HEADERS);
    const fromHeader = config.proof_of_possession_mtls_from_header;
    const certificateHeader = fromHeader === null ? [] : headerValues(headers, fromHeader.certificate_header_name);
    const chainName = fromHeader?.certificate_chain_header_name ?? null;
    const facts: RequestFacts = {
      authorization: headerValues(headers, 'authorization'),
      certificateHeader,
      certificateChainHeader: chainName === null ? [] : headerValues(headers, chainName),
      peerTrusted: certificateHeader.length > 0 && fromHeader !== null && fromHeader.secure_source
        ? await this.#peerTrusted(kong)
        : true,
      host: headerValues(headers, 'host')[0] ?? null,
      headersTruncated: headerLineCount(headers) >= MAX_HEADERS,
    };
    const decision = await verifier.verify(facts);
    this.#sampleFigures();
    if (decision.allow) {
      const plan = this.#upstream;
      // Consumer mapping (consumer_claim): a verified request still ends here when no consumer matches.
      const claimPath = consumerClaimPath(config);
      let mappedHeaders: Record<string, string | string[]> | null = null;
      if (claimPath !== null) {
        const mapping = await mapConsumer(kong, config, claimPath, decision.claims);
        if (mapping.kind === 'not_found' || mapping.kind === 'error') {
          if (mapping.kind === 'error') log.log('error', 'consumer', `consumer mapping failed: ${logSafe(mapping.detail)}`);
          const rejection = mapping.kind === 'error'
            ? failure('internal_error', 'the consumer could not be determined')
            : failure('consumer_not_found', mapping.detail);
          await this.#reject(kong, rejection, null, config.realm ?? facts.host ?? null);
          return { outcome: 'deny', reason: rejection.reason };
        }
        if (mapping.kind === 'consumer') await kong.client.authenticate(mapping.consumer, null);
        mappedHeaders = consumerHeaders(mapping, headers === null ? [] : Object.keys(headers));
      }
      if (plan !== null || mappedHeaders !== null) {
        // One round trip sets the identity headers and removes client-sent copies and hidden headers.
        const upstream = plan === null ? { headers: {}, withheld: [] } : plan.build(decision.claims, decision.certificate, headers === null ? [] : Object.keys(headers));
        for (const w of upstream.withheld) {
          log.log('warn', `upstream:${w.header}`, `upstream header ${logSafe(w.header)} removed, not set: the value of ${logSafe(w.path)} ${w.problem}`);
        }
        await kong.service.request.setHeaders({ ...upstream.headers, ...(mappedHeaders ?? {}) });
      }
      if (config.log_serialize) await kong.log.setSerializeValue(SERIALIZE_KEY, allowRecord(decision.certificate));
      await kong.ctx.shared.set(VERIFIED_FLAG, true);
      return { outcome: 'allow', reason: decision.certificate === null ? 'unbound' : 'bound' };
    }
    await this.#reject(kong, decision.failure, decision, null);
    return { outcome: 'deny', reason: decision.failure.reason };
  }

  /** `kong.ip.is_trusted(kong.client.get_ip())`, cached per address. */
  async #peerTrusted(kong: KongPdk): Promise<boolean> {
    const ip = await kong.client.getIp();
    if (typeof ip !== 'string' || ip.length === 0) return false;
    const cached = this.#trustedPeers.get(ip);
    if (cached !== undefined) return cached;
    const trusted = (await kong.ip.isTrusted(ip)) === true;
    this.#trustedPeers.set(ip, trusted);
    if (!trusted) {
      log.log('warn', `untrusted:${ip}`, `certificate header from untrusted peer ${logSafe(ip)} ignored (not in trusted_ips)`);
    }
    return trusted;
  }

  async #reject(kong: KongPdk, rejection: AuthFailure, decision: Decision | null, realm: string | null): Promise<void> {
    const response = decision !== null && !decision.allow
      ? decision.response
      : toHttpResponse(rejection, {
        realm: realm ?? (this.#state.ready ? this.#state.config.realm : null) ?? 'kong',
        unauthorizedMessage: this.#state.ready ? this.#state.config.unauthorized_error_message : 'Unauthorized',
        forbiddenMessage: this.#state.ready ? this.#state.config.forbidden_error_message : 'Forbidden',
        displayErrors: false,
      });
    if (rejection.reason !== 'token_missing') {
      const cert = decision?.certificate;
      // Formatted only when written: repeats of a reason are rate-limited.
      log.log('warn', rejection.reason, () => {
        const who = cert === null || cert === undefined ? '' : ` cert=${cert.thumbprint} subject="${logSafe(cert.subject)}"`;
        return `rejected ${response.status} reason=${rejection.reason}${who}: ${logSafe(rejection.detail)}`;
      });
    }
    if (this.#state.ready && this.#state.config.log_serialize) {
      try {
        await kong.log.setSerializeValue(SERIALIZE_KEY, denyRecord(rejection.reason, decision?.certificate ?? null));
      } catch {
        // Recording is best effort; the rejection below must happen regardless.
      }
    }
    await kong.response.exit(response.status, response.body, response.headers);
  }
}

export const Plugin = MtlsPopPlugin;
export const Name = 'mtls-pop';
export const Schema = CONFIG_FIELDS;
export const Version = packageVersion();
/** Kong authentication priority: as openid-connect (1050), before acl (950) and rate limiting (910). */
export const Priority = 1050;
