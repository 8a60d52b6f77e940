/**
 * PEM armour (RFC 7468): `-----BEGIN CERTIFICATE-----`, base64 lines, `-----END CERTIFICATE-----`.
 * One block scanner for configured trust anchors (strict: every block must be a valid
 * certificate block) and for the CLI's input files (tolerant: other blocks, such as a private key
 * in the same file, are skipped). The request header decoder has its own variants (header.ts).
 */
import { fail, ok, type Result } from './errors.js';

interface PemBlock {
  readonly label: string;
  readonly der: Buffer;
}

const BASE64_BODY = /^[A-Za-z0-9+/]+={0,2}$/;

/** Every PEM block of `text`, in order; a failure names the block (1-based) and what is wrong. */
function pemBlocks(text: string): Result<PemBlock[]> {
  const out: PemBlock[] = [];
  const begins = text.match(/-----BEGIN [^-\r\n]*-----/g)?.length ?? 0;
  const re = /-----BEGIN ([^-\r\n]*)-----([\s\S]*?)-----END ([^-\r\n]*)-----/g;
  let match: RegExpExecArray | null;
  while ((match = re.exec(text)) !== null) {
    const [, beginLabel = '', body = '', endLabel] = match;
    const count = out.length + 1;
    if (beginLabel !== endLabel) return fail('trust_anchors_unavailable', `PEM block ${count} has mismatched BEGIN/END labels`);
    const base64 = body.replace(/\s+/g, '');
    if (base64.length === 0 || base64.length % 4 !== 0 || !BASE64_BODY.test(base64)) {
      return fail('trust_anchors_unavailable', `PEM block ${count} is not valid base64`);
    }
    out.push({ label: beginLabel, der: Buffer.from(base64, 'base64') });
  }
  if (out.length !== begins) return fail('trust_anchors_unavailable', 'a PEM block has no matching END line');
  return ok(out);
}

/** Strict: the DER of every block of `text`, each of which must be a CERTIFICATE block. */
export function pemCertificates(text: string): Result<Buffer[]> {
  const blocks = pemBlocks(text);
  if (!blocks.ok) return blocks;
  const other = blocks.value.findIndex((block) => block.label !== 'CERTIFICATE');
  if (other >= 0) {
    const label = (blocks.value[other]?.label ?? '').replace(/[^A-Z0-9 ]/g, '?').slice(0, 40);
    return fail('trust_anchors_unavailable', `PEM block ${other + 1} is labelled ${label}, not CERTIFICATE`);
  }
  return ok(blocks.value.map((block) => block.der));
}

/** Tolerant: the DER of the CERTIFICATE blocks of `text`, other blocks skipped; null when a block is malformed. */
export function parsePemBlocks(text: string): Buffer[] | null {
  const blocks = pemBlocks(text);
  return blocks.ok ? blocks.value.filter((block) => block.label === 'CERTIFICATE').map((block) => block.der) : null;
}

/** PEM armour with 64-column lines and a trailing newline, as openssl writes it. */
export function toPem(der: Uint8Array, label = 'CERTIFICATE'): string {
  const lines = Buffer.from(der).toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
