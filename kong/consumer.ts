/**
 * Consumer mapping (Kong openid-connect `consumer_claim`, `consumer_by`, `consumer_optional`,
 * `anonymous`): after a request is verified, the value of the configured claim names a Kong
 * consumer, which is then set with `kong.client.authenticate` so consumer-aware plugins (acl,
 * rate limiting per consumer) and logs see it.
 *
 * - `id` and `username` are looked up with `kong.client.load_consumer` (one PDK round trip each,
 *   answered from Kong's entity cache); `custom_id` through the Admin API
 *   (`GET /consumers?custom_id=`), which the PDK cannot search by.
 * - A returned consumer counts only when the compared field equals the claim value exactly.
 * - No match: the `anonymous` consumer when set, else no consumer when `consumer_optional`, else a
 *   403 `consumer_not_found`. Unlike Kong, `anonymous` never applies to a request that failed
 *   verification: that request is rejected (fail closed).
 * - Upstream headers as Kong's auth plugins set them: `X-Consumer-ID`, `X-Consumer-Username`,
 *   `X-Consumer-Custom-ID`, `X-Anonymous-Consumer`; client-sent copies are removed.
 */
import type { MtlsPopConfig } from '../src/config.js';
import { getJson, HttpError } from '../src/http.js';
import type { KongConsumer, KongPdk } from './pdk.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Headers set (or, with an empty array, removed) for the upstream whenever mapping is on. */
export const CONSUMER_HEADERS = ['X-Consumer-ID', 'X-Consumer-Username', 'X-Consumer-Custom-ID', 'X-Anonymous-Consumer'] as const;

export type ConsumerMapping =
  | { readonly kind: 'consumer'; readonly consumer: KongConsumer; readonly anonymous: boolean }
  | { readonly kind: 'none' }
  | { readonly kind: 'not_found'; readonly detail: string }
  /** The anonymous consumer is configured but does not exist, or a lookup failed. */
  | { readonly kind: 'error'; readonly detail: string };

/** The consumer_claim path, or null when mapping is off. */
export function consumerClaimPath(config: MtlsPopConfig): readonly string[] | null {
  return config.consumer_claim !== null && config.consumer_claim.length > 0 ? config.consumer_claim : null;
}

/** The claim value at `path`: a non-empty string, or a finite number as a string; else null. */
export function consumerClaimValue(claims: Readonly<Record<string, unknown>>, path: readonly string[]): string | null {
  let node: unknown = claims;
  for (const name of path) {
    if (typeof node !== 'object' || node === null || Array.isArray(node) || !Object.hasOwn(node, name)) return null;
    node = (node as Record<string, unknown>)[name];
  }
  if (typeof node === 'string' && node.length > 0 && node.length <= 1024) return node;
  if (typeof node === 'number' && Number.isFinite(node)) return String(node);
  return null;
}

function asConsumer(value: unknown): KongConsumer | null {
  if (typeof value !== 'object' || value === null) return null;
  const id = (value as Record<string, unknown>)['id'];
  return typeof id === 'string' && id.length > 0 ? value as KongConsumer : null;
}

async function byCustomId(config: MtlsPopConfig, value: string): Promise<KongConsumer | null> {
  const base = config.admin_api_url.replace(/\/+$/, '');
  const page = await getJson(`${base}/consumers?custom_id=${encodeURIComponent(value)}`, { timeoutMs: config.timeout, maxBytes: 1024 * 1024 });
  const data = typeof page === 'object' && page !== null ? (page as Record<string, unknown>)['data'] : undefined;
  if (!Array.isArray(data)) return null;
  for (const entry of data) {
    const consumer = asConsumer(entry);
    if (consumer !== null && consumer.custom_id === value) return consumer;
  }
  return null;
}

async function lookUp(kong: KongPdk, config: MtlsPopConfig, by: 'id' | 'username' | 'custom_id', value: string): Promise<KongConsumer | null> {
  if (by === 'custom_id') return byCustomId(config, value);
  if (by === 'id' && !UUID.test(value)) return null; // load_consumer raises an error for a non-UUID id
  const consumer = asConsumer(await kong.client.loadConsumer(value, by === 'username'));
  if (consumer === null) return null;
  return (by === 'id' ? consumer.id.toLowerCase() === value.toLowerCase() : consumer.username === value) ? consumer : null;
}

/** Finds the consumer of a verified request. Throws only when a PDK call fails. */
export async function mapConsumer(kong: KongPdk, config: MtlsPopConfig, path: readonly string[], claims: Readonly<Record<string, unknown>>): Promise<ConsumerMapping> {
  const value = consumerClaimValue(claims, path);
  if (value !== null) {
    for (const by of config.consumer_by) {
      let found: KongConsumer | null;
      try {
        found = await lookUp(kong, config, by, value);
      } catch (error) {
        if (error instanceof HttpError) return { kind: 'error', detail: `consumers could not be searched by custom_id: ${error.message}` };
        throw error;
      }
      if (found !== null) return { kind: 'consumer', consumer: found, anonymous: false };
    }
  }
  const claim = path.join('.');
  const detail = value === null
    ? `the token has no usable ${claim} claim for consumer mapping`
    : `no consumer matches the ${claim} claim (by ${config.consumer_by.join(', ')})`;
  if (config.anonymous !== null) {
    const anonymous = asConsumer(await kong.client.loadConsumer(config.anonymous, true));
    if (anonymous === null) return { kind: 'error', detail: 'the anonymous consumer is configured but does not exist' };
    return { kind: 'consumer', consumer: anonymous, anonymous: true };
  }
  return config.consumer_optional ? { kind: 'none' } : { kind: 'not_found', detail };
}

/** The X-Consumer-* headers for the upstream: values of the consumer, the others removed. */
export function consumerHeaders(mapping: ConsumerMapping, requestHeaderNames: readonly string[] = []): Record<string, string | string[]> {
  const consumer = mapping.kind === 'consumer' ? mapping.consumer : null;
  const text = (v: unknown): string | string[] => (typeof v === 'string' && v.length > 0 && !/[\r\n\0]/.test(v) ? v : []);
  const headers: Record<string, string | string[]> = {
    'X-Consumer-ID': text(consumer?.id),
    'X-Consumer-Username': text(consumer?.username),
    'X-Consumer-Custom-ID': text(consumer?.custom_id),
    'X-Anonymous-Consumer': mapping.kind === 'consumer' && mapping.anonymous ? 'true' : [],
  };
  // Client-sent copies spelled with `_` for `-` are removed too (an empty list clears a header).
  const exact = new Set(CONSUMER_HEADERS.map((h) => h.toLowerCase()));
  for (const name of requestHeaderNames) {
    const lower = name.toLowerCase();
    if (!exact.has(lower) && exact.has(lower.replace(/_/g, '-'))) headers[name] = [];
  }
  return headers;
}
