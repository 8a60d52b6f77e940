/**
 * Section 4, JWKS rotation: the IdP rotates its signing key; 1,000 requests carrying the new kid
 * arrive at once (each a distinct token, same certificate). The Verifier must fetch the JWK Set
 * exactly once (concurrent callers share one fetch) and approve all of them. Fetches are counted
 * at the test JWKS server. The first fetch happened at warm-up; the clock is then moved past
 * `rediscovery_lifetime` (default 30 s), which otherwise forbids a refetch for an unknown kid.
 */
import { Verifier, type RequestFacts } from '../../src/verifier.js';
import { check, type BenchScale, type Figure, type Log } from './common.js';
import { benchConfig, boundToken, haproxyHeader, makeInputs, type BenchInputs } from './inputs.js';

const SECTION = 'jwks rotation';

export async function runJwksRotation(_shared: BenchInputs, scale: BenchScale, log: Log): Promise<Figure[]> {
  // Its own IdP: the rotation must not disturb the other sections' keys.
  const inputs = await makeInputs();
  try {
    const { pki, idp } = inputs;
    let offsetMs = 0;
    const config = benchConfig(inputs);
    const verifier = new Verifier(config, { now: () => Date.now() + offsetMs });
    const header = haproxyHeader(inputs, pki.client);
    const facts = (token: string): RequestFacts => ({ authorization: [`Bearer ${token}`], certificateHeader: [header], peerTrusted: true, host: 'api.example' });

    const warm = await verifier.verify(facts(boundToken(inputs, pki.client, inputs.rsaKey)));
    check(warm.allow, 'warm-up request rejected');
    const newKey = idp.rotate('RS256');
    const tokens = Array.from({ length: scale.rotationRequests }, () => boundToken(inputs, pki.client, newKey));
    offsetMs = (config.rediscovery_lifetime + 1) * 1000;
    const jwksBefore = idp.count('jwks');
    const discoveryBefore = idp.count('discovery');
    const started = process.hrtime.bigint();
    const decisions = await Promise.all(tokens.map((token) => verifier.verify(facts(token))));
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    const fetches = idp.count('jwks') - jwksBefore;
    const approved = decisions.filter((d) => d.allow).length;
    const reasons = new Set(decisions.filter((d) => !d.allow).map((d) => (d.allow ? '' : d.failure.reason)));
    log(`jwks rotation: ${tokens.length} concurrent requests with kid ${newKey.kid}: ${approved} approved in ${ms.toFixed(0)} ms; ` +
      `JWKS fetches ${fetches}, discovery fetches ${idp.count('discovery') - discoveryBefore}${reasons.size > 0 ? `; rejections: ${[...reasons].join(', ')}` : ''}`);
    return [
      { section: SECTION, name: `JWKS fetches for ${tokens.length} concurrent requests with a new kid`, value: fetches, unit: 'fetches', target: { op: '==', limit: 1 } },
      { section: SECTION, name: 'requests with the new kid approved', value: approved, unit: 'requests', target: { op: '==', limit: tokens.length } },
    ];
  } finally {
    await inputs.close();
  }
}
