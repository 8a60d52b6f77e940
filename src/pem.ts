/**
 * PEM armour (RFC 7468): `-----BEGIN CERTIFICATE-----`, base64 lines, `-----END CERTIFICATE-----`.
 * Used for configured trust anchors; the request header decoder has its own tolerant variants.
 */

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
const BASE64_BODY = /^[A-Za-z0-9+/]*={0,2}$/;

/** Every `label` block of `text` as DER, in order; null when a block's body is not valid base64. */
export function parsePemBlocks(text: string, label = 'CERTIFICATE'): Buffer[] | null {
  const out: Buffer[] = [];
  for (const match of text.matchAll(BLOCK)) {
    if (match[1] !== label) continue;
    const body = (match[2] ?? '').replace(/\s+/g, '');
    if (body.length === 0 || body.length % 4 !== 0 || !BASE64_BODY.test(body)) return null;
    out.push(Buffer.from(body, 'base64'));
  }
  return out;
}

/** Certificates of a PEM text as DER; [] when there are none or the text is malformed. */
export function pemBlocksToDer(text: string): Buffer[] {
  return parsePemBlocks(text) ?? [];
}
