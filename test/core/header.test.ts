import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeCertificateHeader, type HeaderLimits } from '../../src/header.js';
import type { HeaderFormat } from '../../src/config.js';
import type { ReasonCode, Result } from '../../src/errors.js';
import { makeTestPki, toPem, writePemFiles, type TestPki } from '../helpers/pki.js';
import {
  freePort, mtlsGet, nginxHttpTempPaths, nginxPreamble, rawHeaderValue, requireExecutable, startHaproxy,
  startHeadRecorder, startNginx,
} from '../helpers/terminators.js';

const LIMITS: HeaderLimits = { maxHeaderSize: 32768, maxChainLength: 10 };
const FORMATS: readonly HeaderFormat[] = ['base64_encoded', 'url_encoded', 'pem', 'xfcc', 'rfc9440'];

let pki: TestPki;
before(async () => { pki = await makeTestPki(); });

function decoded(result: Result<readonly Buffer[]>): readonly Buffer[] {
  if (!result.ok) assert.fail(`expected ok, got ${result.error.reason}: ${result.error.detail}`);
  return result.value;
}

function assertDers(result: Result<readonly Buffer[]>, expected: readonly Buffer[]): void {
  const value = decoded(result);
  assert.deepEqual(value.map((b) => b.toString('hex')), expected.map((b) => b.toString('hex')));
}

/** Asserts a failure with exactly `reason`; returns its detail. */
function failed(result: Result<readonly Buffer[]>, reason: ReasonCode): string {
  if (result.ok) assert.fail(`expected ${reason}, got ok with ${result.value.length} certificate(s)`);
  assert.equal(result.error.reason, reason, result.error.detail);
  return result.error.detail;
}

const b64 = (der: Buffer): string => der.toString('base64');

/**
 * The url-safe base64 (RFC 4648 section 5) of a test certificate whose encoding has a "-" or "_":
 * about 1 in 20 fresh certificates encodes without a "+", so one certificate alone would be a flaky probe.
 */
function urlSafeBase64(): string {
  const found = [pki.client, pki.otherClient, pki.directClient, pki.intermediate, pki.root, pki.server]
    .map((issued) => issued.der.toString('base64url')).find((text) => /[-_]/.test(text));
  assert.ok(found !== undefined, 'precondition: a test certificate whose standard base64 has + or /');
  return found;
}
/** nginx/Envoy style: every reserved character escaped (close to ngx_escape_uri's URI component table). */
const escapeAll = (text: string): string => encodeURIComponent(text);
/** AWS ALB style: percent-encoded, but `+ = /` left as they are. */
const albEscape = (text: string): string => encodeURIComponent(text).replace(/%2B/g, '+').replace(/%3D/g, '=').replace(/%2F/g, '/');
const sf = (der: Buffer): string => `:${b64(der)}:`;

/** Minimal DER TLV builder for hand-made structures. */
function tlv(tag: number, content: Buffer): Buffer {
  const n = content.length;
  const length = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), length, content]);
}

describe('base64_encoded (HAProxy, Traefik, Cloudflare)', () => {
  test('HAProxy ssl_c_der,base64: one line of base64 DER gives the leaf', () => {
    assertDers(decodeCertificateHeader(b64(pki.client.der), 'base64_encoded', LIMITS), [pki.client.der]);
  });

  test('Traefik comma list keeps leaf-first order and tolerates spaces around commas', () => {
    const value = `${b64(pki.client.der)} ,\t${b64(pki.intermediate.der)},  ${b64(pki.root.der)}`;
    assertDers(decodeCertificateHeader(value, 'base64_encoded', LIMITS), [pki.client.der, pki.intermediate.der, pki.root.der]);
  });

  test('HAProxy ssl_c_chain_der: DER certificates back to back in one item are split in order', () => {
    const value = `${b64(pki.client.der)},${b64(Buffer.concat([pki.intermediate.der, pki.root.der]))}`;
    assertDers(decodeCertificateHeader(value, 'base64_encoded', LIMITS), [pki.client.der, pki.intermediate.der, pki.root.der]);
  });

  test('empty list items are ignored (HAProxy leaf,<empty chain>), only commas is no certificate', () => {
    assertDers(decodeCertificateHeader(`${b64(pki.client.der)},`, 'base64_encoded', LIMITS), [pki.client.der]);
    assertDers(decodeCertificateHeader(` , ${b64(pki.client.der)}`, 'base64_encoded', LIMITS), [pki.client.der]);
    failed(decodeCertificateHeader(' , ,', 'base64_encoded', LIMITS), 'certificate_missing');
  });

  test('padding is optional but must be right when present', () => {
    const unpadded = b64(pki.client.der).replace(/=+$/, '');
    assertDers(decodeCertificateHeader(unpadded, 'base64_encoded', LIMITS), [pki.client.der]);
    // One byte 0x01: "AQ" and "AQ==" are base64 (the DER check then rejects the byte), the rest are not.
    for (const good of ['AQ', 'AQ==']) failed(decodeCertificateHeader(good, 'base64_encoded', LIMITS), 'certificate_malformed');
    for (const bad of ['AQ=', 'AQ===', 'AQID=', 'AQID==', '=AQ', 'A=Q=']) {
      failed(decodeCertificateHeader(bad, 'base64_encoded', LIMITS), 'certificate_header_malformed');
    }
  });

  test('strict alphabet: url-safe base64, embedded whitespace and garbage are rejected', () => {
    const value = b64(pki.client.der);
    assert.equal(failed(decodeCertificateHeader(urlSafeBase64(), 'base64_encoded', LIMITS), 'certificate_header_malformed'),
      'base64 item 1 is not valid standard base64: a character outside the standard base64 alphabet');
    failed(decodeCertificateHeader(`${value.slice(0, 64)} ${value.slice(64)}`, 'base64_encoded', LIMITS), 'certificate_header_malformed');
    failed(decodeCertificateHeader(`${value.slice(0, 64)}*${value.slice(64)}`, 'base64_encoded', LIMITS), 'certificate_header_malformed');
    failed(decodeCertificateHeader(`${value}\u00e9`, 'base64_encoded', LIMITS), 'certificate_header_malformed');
  });

  test('non-canonical base64 (non-zero pad bits) is rejected', () => {
    // "AQ" is canonical for 0x01 and "AQI" for 0x01 0x02; "AR" and "AQJ" set pad bits.
    for (const bad of ['AR==', 'AR', 'AQJ=', 'AQJ']) {
      assert.equal(failed(decodeCertificateHeader(bad, 'base64_encoded', LIMITS), 'certificate_header_malformed'),
        'base64 item 1 is not valid standard base64: non-zero pad bits (not canonical base64)');
    }
  });

  test('a length no base64 has (4n+1) is rejected', () => {
    failed(decodeCertificateHeader(`${b64(pki.client.der).replace(/=+$/, '')}AAAAA`.slice(0, 4 * 50 + 1), 'base64_encoded', LIMITS),
      'certificate_header_malformed');
  });

  test('PEM sent with format base64_encoded is rejected with a hint, never the content', () => {
    const detail = failed(decodeCertificateHeader(pki.client.pem, 'base64_encoded', LIMITS), 'certificate_header_malformed');
    assert.match(detail, /looks like pem: check certificate_header_format/);
    const escaped = failed(decodeCertificateHeader(escapeAll(pki.client.pem), 'base64_encoded', LIMITS), 'certificate_header_malformed');
    assert.match(escaped, /looks like url_encoded/);
  });

  test('base64 of PEM text decodes, but is not DER: certificate_malformed says so', () => {
    const detail = failed(decodeCertificateHeader(Buffer.from(pki.client.pem).toString('base64'), 'base64_encoded', LIMITS),
      'certificate_malformed');
    assert.match(detail, /^certificate 1 \(leaf\) is not a DER X\.509 certificate: .*PEM text, not DER/);
  });
});

describe('url_encoded (nginx $ssl_client_escaped_cert, AWS ALB)', () => {
  test('nginx-style fully escaped PEM gives the leaf', () => {
    assertDers(decodeCertificateHeader(escapeAll(pki.client.pem), 'url_encoded', LIMITS), [pki.client.der]);
  });

  test('AWS ALB: leaf + intermediate with + = / unescaped decodes to both, + stays +', () => {
    const value = albEscape(pki.client.pem + pki.intermediate.pem);
    assert.ok(value.includes('+') || value.includes('/'), 'precondition: unescaped + or / in the header');
    assert.ok(value.includes('%0A') && value.includes('%20'), 'precondition: newlines and spaces escaped');
    assertDers(decodeCertificateHeader(value, 'url_encoded', LIMITS), [pki.client.der, pki.intermediate.der]);
  });

  test('leaf, intermediate and root in order; lowercase hex escapes accepted', () => {
    const value = escapeAll(pki.client.pem + pki.intermediate.pem + pki.root.pem).replace(/%([0-9A-F]{2})/g, (_m, h: string) => `%${h.toLowerCase()}`);
    assertDers(decodeCertificateHeader(value, 'url_encoded', LIMITS), [pki.client.der, pki.intermediate.der, pki.root.der]);
  });

  test('malformed % sequences are certificate_header_malformed', () => {
    const good = escapeAll(pki.client.pem);
    for (const bad of [`${good}%`, `${good}%4`, `%G0${good}`, good.replace('%0A', '%0Z')]) {
      assert.equal(failed(decodeCertificateHeader(bad, 'url_encoded', LIMITS), 'certificate_header_malformed'),
        'the header has a "%" that is not followed by two hex digits');
    }
  });

  test('only one round of decoding: double-escaped PEM is not accepted', () => {
    failed(decodeCertificateHeader(escapeAll(escapeAll(pki.client.pem)), 'url_encoded', LIMITS), 'certificate_header_malformed');
  });

  test('text that is not PEM, a private key block, and a BEGIN without END are rejected', () => {
    failed(decodeCertificateHeader('hello%20world', 'url_encoded', LIMITS), 'certificate_header_malformed');
    failed(decodeCertificateHeader('%20%0A', 'url_encoded', LIMITS), 'certificate_header_malformed');
    const key = escapeAll('-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n');
    assert.equal(failed(decodeCertificateHeader(key, 'url_encoded', LIMITS), 'certificate_header_malformed'),
      'PEM block 1 in the header is not a CERTIFICATE block');
    const unclosed = escapeAll(pki.client.pem.replace('-----END CERTIFICATE-----\n', ''));
    failed(decodeCertificateHeader(unclosed, 'url_encoded', LIMITS), 'certificate_header_malformed');
  });
});

describe('pem (raw PEM and its mangled forms)', () => {
  test('raw PEM chain: every block counts, leaf first', () => {
    assertDers(decodeCertificateHeader(pki.client.pem + pki.intermediate.pem, 'pem', LIMITS), [pki.client.der, pki.intermediate.der]);
  });

  test("nginx $ssl_client_cert: every line after the first starts with a TAB", () => {
    const value = (pki.client.pem + pki.intermediate.pem).trimEnd().replace(/\n/g, '\n\t');
    assertDers(decodeCertificateHeader(value, 'pem', LIMITS), [pki.client.der, pki.intermediate.der]);
  });

  test('PEM whose newlines a proxy replaced by spaces, and CRLF line ends', () => {
    const pem = pki.client.pem + pki.intermediate.pem;
    assertDers(decodeCertificateHeader(pem.replace(/\n/g, ' '), 'pem', LIMITS), [pki.client.der, pki.intermediate.der]);
    assertDers(decodeCertificateHeader(pem.replace(/\n/g, '\r\n'), 'pem', LIMITS), [pki.client.der, pki.intermediate.der]);
    // No separator at all between blocks, and base64 in one unbroken line.
    const tight = toPem(pki.client.der).replace(/\n/g, '') + toPem(pki.intermediate.der).replace(/\n/g, '');
    assertDers(decodeCertificateHeader(tight, 'pem', LIMITS), [pki.client.der, pki.intermediate.der]);
  });

  test('text outside the blocks is rejected (openssl -text output, trailing junk)', () => {
    failed(decodeCertificateHeader(`Certificate:\n  Data: ...\n${pki.client.pem}`, 'pem', LIMITS), 'certificate_header_malformed');
    assert.equal(failed(decodeCertificateHeader(`${pki.client.pem}junk`, 'pem', LIMITS), 'certificate_header_malformed'),
      'the header has text after PEM block 1 that is not another PEM block');
  });

  test('legacy "X509 CERTIFICATE" label, mismatched END label and nested BEGIN are rejected', () => {
    failed(decodeCertificateHeader(pki.client.pem.replace(/CERTIFICATE/g, 'X509 CERTIFICATE'), 'pem', LIMITS), 'certificate_header_malformed');
    failed(decodeCertificateHeader(pki.client.pem.replace('END CERTIFICATE', 'END PUBLIC KEY'), 'pem', LIMITS), 'certificate_header_malformed');
    const nested = pki.client.pem.replace('-----END CERTIFICATE-----\n', '') + pki.intermediate.pem;
    assert.equal(failed(decodeCertificateHeader(nested, 'pem', LIMITS), 'certificate_header_malformed'),
      'PEM block 1 in the header is not closed by "-----END CERTIFICATE-----"');
  });

  test('base64 sent as pem gets a hint; a bad character inside the body is malformed', () => {
    assert.match(failed(decodeCertificateHeader(b64(pki.client.der), 'pem', LIMITS), 'certificate_header_malformed'),
      /looks like base64_encoded/);
    failed(decodeCertificateHeader(pki.client.pem.replace('\n', '\n!'), 'pem', LIMITS), 'certificate_header_malformed');
  });
});

describe('xfcc (Envoy / Istio x-forwarded-client-cert)', () => {
  const hash = (der: Buffer): string => createHash('sha256').update(der).digest('hex');

  test('Envoy element with Hash, quoted Cert, quoted Subject with commas and escaped quotes', () => {
    const value = `By=spiffe://cluster.local/ns/default/sa/api;Hash=${hash(pki.client.der)};`
      + `Cert="${escapeAll(pki.client.pem)}";Subject="CN=client-1,O=\\"mtls-pop tests\\"";URI=spiffe://cluster.local/ns/default/sa/client;DNS=client-1.example`;
    assertDers(decodeCertificateHeader(value, 'xfcc', LIMITS), [pki.client.der]);
  });

  test('several elements: with xfcc_element_count n the first one (the client-facing Envoy) is used, and its Chain gives leaf first', () => {
    const first = `By=spiffe://b;Hash=${hash(pki.client.der).toUpperCase()};Cert="${escapeAll(pki.client.pem)}";`
      + `Chain="${escapeAll(pki.client.pem + pki.intermediate.pem)}";Subject="CN=client-1,O=y"`;
    const hop = `By=spiffe://a;Hash=${hash(pki.otherClient.der)};Cert="${escapeAll(pki.otherClient.pem)}";Subject="CN=client-2,O=x";URI=spiffe://c`;
    const two = { ...LIMITS, xfccElements: 2 };
    assertDers(decodeCertificateHeader(`${first},${hop}`, 'xfcc', two), [pki.client.der, pki.intermediate.der]);
    assertDers(decodeCertificateHeader(`${first} , ${hop}`, 'xfcc', two), [pki.client.der, pki.intermediate.der]);
    assertDers(decodeCertificateHeader(`${hop},${first}`, 'xfcc', two), [pki.otherClient.der]);
    assertDers(decodeCertificateHeader(`${hop},${first},${hop}`, 'xfcc', { ...LIMITS, xfccElements: 3 }), [pki.otherClient.der]);
  });

  test('an element count other than xfcc_element_count is refused, in both directions', () => {
    const element = `Hash=${hash(pki.client.der)};Cert="${escapeAll(pki.client.pem)}"`;
    assert.equal(failed(decodeCertificateHeader(`${element},${element}`, 'xfcc', LIMITS), 'certificate_header_malformed'),
      'x-forwarded-client-cert has 2 elements, xfcc_element_count is 1 (a certificate SAN may have injected one, or a proxy appended one the configuration does not expect)');
    assert.match(failed(decodeCertificateHeader(element, 'xfcc', { ...LIMITS, xfccElements: 2 }), 'certificate_header_malformed'),
      /has 1 element, xfcc_element_count is 2/);
  });

  test('unquoted Cert, Chain without Cert, and lower-case keys are accepted', () => {
    assertDers(decodeCertificateHeader(`Cert=${escapeAll(pki.client.pem)}`, 'xfcc', LIMITS), [pki.client.der]);
    assertDers(decodeCertificateHeader(`chain="${escapeAll(pki.client.pem + pki.intermediate.pem)}"`, 'xfcc', LIMITS),
      [pki.client.der, pki.intermediate.der]);
  });

  test('Hash mismatch, bad Hash, Chain not starting with Cert are certificate_header_malformed', () => {
    const cert = `Cert="${escapeAll(pki.client.pem)}"`;
    assert.equal(failed(decodeCertificateHeader(`Hash=${hash(pki.otherClient.der)};${cert}`, 'xfcc', LIMITS), 'certificate_header_malformed'),
      'the x-forwarded-client-cert Hash is not the SHA-256 of its certificate');
    failed(decodeCertificateHeader(`Hash=${hash(pki.client.der).slice(2)};${cert}`, 'xfcc', LIMITS), 'certificate_header_malformed');
    failed(decodeCertificateHeader(`Hash=${Buffer.from(hash(pki.client.der), 'hex').toString('base64')};${cert}`, 'xfcc', LIMITS),
      'certificate_header_malformed');
    const chain = `Chain="${escapeAll(pki.otherClient.pem + pki.intermediate.pem)}"`;
    assert.equal(failed(decodeCertificateHeader(`${cert};${chain}`, 'xfcc', LIMITS), 'certificate_header_malformed'),
      'the x-forwarded-client-cert Chain does not start with the Cert certificate');
  });

  test('no Cert or Chain in the first element is certificate_missing, even when a later one has one', () => {
    failed(decodeCertificateHeader('By=spiffe://a;Hash=00;Subject="CN=x"', 'xfcc', LIMITS), 'certificate_missing');
    failed(decodeCertificateHeader(`By=spiffe://b;URI=spiffe://c,Cert="${escapeAll(pki.client.pem)}"`, 'xfcc', { ...LIMITS, xfccElements: 2 }),
      'certificate_missing');
  });

  test('broken syntax anywhere is certificate_header_malformed', () => {
    const cert = `Cert="${escapeAll(pki.client.pem)}"`;
    const cases = [
      `By="unterminated;${cert}`, // the quote swallows the rest
      `By=a"b;${cert}`, // quote inside an unquoted value
      `By;${cert}`, // pair without =
      `=x;${cert}`, // empty key
      `${cert};`, // dangling ;
      `${cert};${cert}`, // Cert twice
      `${cert}x`, // text after a quoted value
      'Cert=""', // empty Cert
      `Cert="${escapeAll(pki.client.pem + pki.intermediate.pem)}"`, // Cert with two certificates
      `Cert="${escapeAll(pki.client.pem)}%ZZ"`, // bad percent escape
    ];
    for (const value of cases) failed(decodeCertificateHeader(value, 'xfcc', LIMITS), 'certificate_header_malformed');
  });

  test('what Envoy legitimately writes passes: several URI= and DNS=, an empty URI=, `=` in a SAN, a Subject with quotes, commas, `;` and `=`', () => {
    const envoy = `By=spiffe://a;By=spiffe://b;Hash=${hash(pki.client.der)};Cert="${escapeAll(pki.client.pem)}";`
      + 'Subject="CN=a\\,b\\;c\\=d,O=\\"x\\"\\\\";URI=spiffe://x/y?p=q;URI=;DNS=a.example;DNS=*.b.example';
    assertDers(decodeCertificateHeader(envoy, 'xfcc', LIMITS), [pki.client.der]);
  });

  test('a certificate SAN that injects structure is refused (Envoy writes URI= and DNS= unquoted and unescaped)', () => {
    const own = `Hash=${hash(pki.rogueClient.der)};Cert="${escapeAll(pki.rogueClient.pem)}";Subject="CN=attacker"`;
    const victim = `Cert="${escapeAll(pki.client.pem)}"`;
    const cases: Array<[string, string, RegExp]> = [
      ['a new element through a URI SAN', `${own};URI=spiffe://x,${victim}`, /has 2 elements/],
      ['a new element through a DNS SAN', `${own};DNS=a.example,Hash=${hash(pki.client.der)};${victim}`, /has 2 elements/],
      ['an element through the second of several SANs', `${own};URI=spiffe://ok;URI=spiffe://x,${victim};URI=y`, /has 2 elements/],
      ['Cert= in the same element after URI=', `Hash=${hash(pki.rogueClient.der)};URI=spiffe://x;${victim}`, /Cert= after a URI= or DNS= value/],
      ['Chain= after DNS=', `${own};DNS=a;Chain="${escapeAll(pki.client.pem)}"`, /Chain= after a URI= or DNS= value/],
      ['Hash= after URI=', `Cert="${escapeAll(pki.client.pem)}";URI=x;Hash=${hash(pki.client.der)}`, /Hash= after a URI= or DNS= value/],
      ['Subject= after DNS=', `${own.replace(';Subject="CN=attacker"', '')};DNS=a;Subject="CN=x"`, /Subject= after a URI= or DNS= value/],
      ['By= after URI=', `${own};URI=x;By=spiffe://y`, /By= after a URI= or DNS= value/],
      ['a key Envoy does not write', `${own};URI=x;X=y`, /a key Envoy does not write/],
      ['an unknown key anywhere', `Foo=bar;${own}`, /a key Envoy does not write/],
      ['a quoted URI value that swallows separators', `${own};URI="x,${victim};y"`, /a quoted URI value/],
      ['a quoted DNS value', `${own};DNS="a.example"`, /a quoted DNS value/],
      ['a quoted Hash', `Hash="${hash(pki.client.der)}";${victim}`, /a quoted Hash value/],
      ['Subject twice', `${own};Subject="CN=x"`, /Subject twice/],
      ['Cert and cert', `${own};cert="${escapeAll(pki.client.pem)}"`, /Cert twice/],
      ['Hash twice', `${own};Hash=${hash(pki.client.der)}`, /Hash twice/],
      ['a trailing empty element', `${own};URI=x,`, /an empty element/],
      ['an empty element in the middle', `${own},,${victim}`, /an empty element/],
      ['a leading empty element', `,${own}`, /an empty element/],
      ['a dangling ; before a comma', `${own};,${victim}`, /";" not followed by another pair/],
      // A producer that does not escape the DN (BoringSSL does): a trailing backslash in the subject
      // escapes the closing quote and the quoted string runs on into a SAN.
      ['a Subject whose trailing backslash swallows a SAN', `${own.replace('"CN=attacker"', '"CN=x\\"')};URI=";${victim}`, /Cert twice/],
    ];
    for (const [name, value, detail] of cases) {
      assert.match(failed(decodeCertificateHeader(value, 'xfcc', LIMITS), 'certificate_header_malformed'), detail, name);
      // The shape rules hold whatever the count: with two elements expected, an injected second
      // element leaves the first (the attacker's own certificate) in use, which is safe; every
      // other case is still refused.
      const withTwo = decodeCertificateHeader(value, 'xfcc', { ...LIMITS, xfccElements: 2 });
      if (detail.source.includes('elements')) assertDers(withTwo, [pki.rogueClient.der]);
      else failed(withTwo, 'certificate_header_malformed');
    }
  });
});

describe('rfc9440 (Client-Cert / Client-Cert-Chain)', () => {
  test('Client-Cert alone, with the chain header absent, null or empty', () => {
    for (const chain of [undefined, null, '', '  ']) {
      assertDers(decodeCertificateHeader(sf(pki.client.der), 'rfc9440', LIMITS, chain), [pki.client.der]);
    }
  });

  test('Client-Cert-Chain list is appended after the leaf, in order', () => {
    assertDers(decodeCertificateHeader(sf(pki.client.der), 'rfc9440', LIMITS, `${sf(pki.intermediate.der)}, ${sf(pki.root.der)}`),
      [pki.client.der, pki.intermediate.der, pki.root.der]);
  });

  test('parameters are parsed and ignored (RFC 8941 3.1.2); missing padding is tolerated (4.2.7)', () => {
    const leaf = `${sf(pki.client.der).replace(/=+:$/, ':')};a=1;b="x\\"y";c=?1;d=-1.25;e=tok/x:y;*f;g=:AQ==:`;
    assertDers(decodeCertificateHeader(leaf, 'rfc9440', LIMITS, `${sf(pki.intermediate.der)};p=1 ,${sf(pki.root.der)}`),
      [pki.client.der, pki.intermediate.der, pki.root.der]);
  });

  test('syntax errors are certificate_header_malformed', () => {
    const leaf = sf(pki.client.der);
    const cases: Array<[string, string | undefined]> = [
      [b64(pki.client.der), undefined], // no colons
      [`:${b64(pki.client.der)}`, undefined], // no closing colon
      [`${leaf} x`, undefined], // text after the item
      [`:${urlSafeBase64()}:`, undefined], // url-safe alphabet
      [`${leaf};A=1`, undefined], // upper-case parameter key
      [`${leaf};a=1.2345`, undefined], // decimal with 4 fraction digits
      [leaf, `${sf(pki.intermediate.der)},`], // trailing comma
      [leaf, `(${sf(pki.intermediate.der)})`], // inner list
      [leaf, 'token'], // not a byte sequence
      [leaf, `${sf(pki.intermediate.der)} ${sf(pki.root.der)}`], // missing comma
    ];
    for (const [value, chain] of cases) failed(decodeCertificateHeader(value, 'rfc9440', LIMITS, chain), 'certificate_header_malformed');
  });

  test('the chain header is ignored by the other formats', () => {
    assertDers(decodeCertificateHeader(b64(pki.client.der), 'base64_encoded', LIMITS, 'garbage'), [pki.client.der]);
  });
});

describe('limits, emptiness and the outer DER check', () => {
  test('empty or whitespace-only values are certificate_missing in every format', () => {
    for (const format of FORMATS) {
      for (const value of ['', ' ', '\t \t']) failed(decodeCertificateHeader(value, format, LIMITS), 'certificate_missing');
    }
  });

  test('a value at the size cap is decoded, one character more is certificate_header_too_large', () => {
    const value = b64(pki.client.der);
    const limits = { maxHeaderSize: value.length + 10, maxChainLength: 10 };
    assertDers(decodeCertificateHeader(value + ' '.repeat(10), 'base64_encoded', limits), [pki.client.der]);
    assert.equal(failed(decodeCertificateHeader(value + ' '.repeat(11), 'base64_encoded', limits), 'certificate_header_too_large'),
      `certificate header is ${value.length + 11} characters, more than the ${value.length + 10} allowed`);
    // rfc9440 counts both headers.
    const leaf = sf(pki.client.der);
    const chain = sf(pki.intermediate.der);
    const exact = { maxHeaderSize: leaf.length + chain.length, maxChainLength: 10 };
    assertDers(decodeCertificateHeader(leaf, 'rfc9440', exact, chain), [pki.client.der, pki.intermediate.der]);
    failed(decodeCertificateHeader(leaf, 'rfc9440', exact, `${chain} `), 'certificate_header_too_large');
  });

  test('the size is checked before anything else (a huge blank or garbage value is too large, not missing)', () => {
    for (const format of FORMATS) {
      failed(decodeCertificateHeader(' '.repeat(40_000), format, LIMITS), 'certificate_header_too_large');
      failed(decodeCertificateHeader('%'.repeat(40_000), format, LIMITS), 'certificate_header_too_large');
    }
  });

  test('maxChainLength certificates pass, one more is certificate_too_many, in every format', () => {
    const limits = { maxHeaderSize: 1_048_576, maxChainLength: 3 };
    const four = [pki.client, pki.intermediate, pki.root, pki.otherClient];
    const three = four.slice(0, 3);
    const encode: Record<HeaderFormat, (list: typeof four) => [string, string?]> = {
      base64_encoded: (list) => [list.map((c) => b64(c.der)).join(',')],
      url_encoded: (list) => [albEscape(list.map((c) => c.pem).join(''))],
      pem: (list) => [list.map((c) => c.pem).join('')],
      xfcc: (list) => [`Chain="${escapeAll(list.map((c) => c.pem).join(''))}"`],
      rfc9440: (list) => [sf(list[0]!.der), list.slice(1).map((c) => sf(c.der)).join(', ')],
    };
    for (const format of FORMATS) {
      const [okValue, okChain] = encode[format](three);
      assertDers(decodeCertificateHeader(okValue, format, limits, okChain), three.map((c) => c.der));
      const [value, chain] = encode[format](four);
      assert.equal(failed(decodeCertificateHeader(value, format, limits, chain), 'certificate_too_many'),
        'the certificate header holds more than 3 certificates', format);
    }
    // Concatenated DER counts each certificate too.
    failed(decodeCertificateHeader(b64(Buffer.concat(four.map((c) => c.der))), 'base64_encoded', limits), 'certificate_too_many');
  });

  test('trailing bytes after a valid DER certificate are certificate_malformed', () => {
    const withTrailer = Buffer.concat([pki.client.der, Buffer.from([0x00, 0x00])]);
    assert.equal(failed(decodeCertificateHeader(b64(withTrailer), 'base64_encoded', LIMITS), 'certificate_malformed'),
      '2 trailing byte(s) after certificate 1 are not a DER X.509 certificate: it does not start with a SEQUENCE');
    assert.equal(failed(decodeCertificateHeader(toPem(withTrailer), 'pem', LIMITS), 'certificate_malformed'),
      'certificate 1 (leaf) is not a DER X.509 certificate: 2 trailing byte(s) after the certificate SEQUENCE');
    failed(decodeCertificateHeader(escapeAll(toPem(withTrailer)), 'url_encoded', LIMITS), 'certificate_malformed');
    failed(decodeCertificateHeader(`Cert="${escapeAll(toPem(withTrailer))}"`, 'xfcc', LIMITS), 'certificate_malformed');
    assert.equal(failed(decodeCertificateHeader(sf(pki.client.der), 'rfc9440', LIMITS, sf(withTrailer)), 'certificate_malformed'),
      'certificate 2 (intermediate) is not a DER X.509 certificate: 2 trailing byte(s) after the certificate SEQUENCE');
  });

  test('a valid DER SEQUENCE that is not a certificate is certificate_malformed', () => {
    const integerOnly = tlv(0x30, tlv(0x02, Buffer.from([1])));
    assert.equal(failed(decodeCertificateHeader(b64(integerOnly), 'base64_encoded', LIMITS), 'certificate_malformed'),
      'certificate 1 (leaf) is not a DER X.509 certificate: a SEQUENCE, but its first element is not a tbsCertificate SEQUENCE');
    // A SubjectPublicKeyInfo: SEQUENCE { AlgorithmIdentifier, BIT STRING }, two elements only.
    const spki = pki.client.cert.publicKey.rawData;
    assert.equal(failed(decodeCertificateHeader(toPem(Buffer.from(spki)), 'pem', LIMITS), 'certificate_malformed'),
      'certificate 1 (leaf) is not a DER X.509 certificate: a SEQUENCE, but its second element is not an AlgorithmIdentifier SEQUENCE');
    const four = tlv(0x30, Buffer.concat([tlv(0x30, Buffer.alloc(0)), tlv(0x30, Buffer.alloc(0)), tlv(0x03, Buffer.from([0])), tlv(0x05, Buffer.alloc(0))]));
    assert.equal(failed(decodeCertificateHeader(sf(four), 'rfc9440', LIMITS), 'certificate_malformed'),
      'certificate 1 (leaf) is not a DER X.509 certificate: a SEQUENCE with more than three elements');
    failed(decodeCertificateHeader(sf(tlv(0x31, Buffer.alloc(0))), 'rfc9440', LIMITS), 'certificate_malformed');
    failed(decodeCertificateHeader('::', 'rfc9440', LIMITS), 'certificate_malformed');
  });

  test('BER-only encodings are rejected: indefinite length and non-minimal length', () => {
    const der = pki.client.der;
    assert.equal(der[1], 0x82, 'precondition: the leaf uses a two-byte length');
    const nonMinimal = Buffer.concat([Buffer.from([0x30, 0x83, 0x00]), der.subarray(2)]);
    assert.match(failed(decodeCertificateHeader(b64(nonMinimal), 'base64_encoded', LIMITS), 'certificate_malformed'),
      /non-minimal length encoding/);
    const indefinite = Buffer.concat([Buffer.from([0x30, 0x80]), der.subarray(4), Buffer.from([0, 0])]);
    assert.match(failed(decodeCertificateHeader(b64(indefinite), 'base64_encoded', LIMITS), 'certificate_malformed'),
      /indefinite length/);
    const truncated = der.subarray(0, der.length - 1);
    assert.match(failed(decodeCertificateHeader(b64(truncated), 'base64_encoded', LIMITS), 'certificate_malformed'), /truncated/);
  });

  test('the position of a bad certificate is named', () => {
    const bad = tlv(0x30, tlv(0x02, Buffer.from([1])));
    const detail = failed(decodeCertificateHeader(`${b64(pki.client.der)},${b64(pki.intermediate.der)},${b64(bad)}`, 'base64_encoded', LIMITS),
      'certificate_malformed');
    assert.match(detail, /^certificate 3 \(intermediate\) is not a DER X\.509 certificate/);
  });

  test('failure details never contain the header value or certificate data', () => {
    const leaf = b64(pki.client.der);
    const probes: Array<[string, HeaderFormat, string?]> = [
      [`${leaf}!`, 'base64_encoded'],
      [b64(Buffer.concat([pki.client.der, Buffer.from([1])])), 'base64_encoded'],
      [`${escapeAll(pki.client.pem)}%`, 'url_encoded'],
      [pki.client.pem.replace('END', 'XND'), 'pem'],
      [`Hash=00;Cert="${escapeAll(pki.client.pem)}"`, 'xfcc'],
      [`:${leaf}`, 'rfc9440'],
      [sf(pki.client.der), 'rfc9440', `:${leaf.slice(0, 40)}:`],
    ];
    for (const [value, format, chain] of probes) {
      const result = decodeCertificateHeader(value, format, LIMITS, chain);
      assert.equal(result.ok, false, format);
      if (!result.ok) {
        assert.ok(!result.error.detail.includes(leaf.slice(0, 16)), result.error.detail);
        assert.ok(!result.error.detail.includes('MII'), result.error.detail);
        assert.ok(result.error.detail.length < 200, result.error.detail);
      }
    }
  });

  test('returned buffers own their memory (safe to pass der.buffer to ASN.1 libraries)', () => {
    for (const result of [
      decodeCertificateHeader(b64(pki.client.der), 'base64_encoded', LIMITS),
      decodeCertificateHeader(b64(Buffer.concat([pki.client.der, pki.intermediate.der])), 'base64_encoded', LIMITS),
      decodeCertificateHeader(pki.client.pem, 'pem', LIMITS),
    ]) {
      for (const der of decoded(result)) {
        assert.equal(der.byteOffset, 0);
        assert.equal(der.buffer.byteLength, der.length);
      }
    }
  });

  test('decoding stays linear on adversarial 1 MB values (no quadratic scans)', () => {
    const limits = { maxHeaderSize: 1_048_576, maxChainLength: 64 };
    const n = 1_000_000;
    const inputs: Array<[string, HeaderFormat, ReasonCode]> = [
      [`Subject="${'\\"'.repeat(n / 2 - 10)}"`, 'xfcc', 'certificate_missing'],
      [`${'URI=b;'.repeat(n / 6 - 10)}Cert=x`, 'xfcc', 'certificate_header_malformed'],
      [`${'URI=b,'.repeat(n / 6 - 10)}Cert=x`, 'xfcc', 'certificate_header_malformed'],
      [`Subject="${'\\x'.repeat(n / 2 - 10)}`, 'xfcc', 'certificate_header_malformed'],
      [','.repeat(n), 'xfcc', 'certificate_header_malformed'],
      ['%41'.repeat(n / 3), 'url_encoded', 'certificate_header_malformed'],
      [`-----BEGIN CERTIFICATE-----${' '.repeat(n - 30)}`, 'pem', 'certificate_header_malformed'],
      [`-----BEGIN CERTIFICATE-----${'A'.repeat(n - 60)}-----END CERTIFICATE-----`, 'pem', 'certificate_malformed'],
      [`:${'A'.repeat(n - 2)}`, 'rfc9440', 'certificate_header_malformed'],
      [`:AAAA:${';a'.repeat(n / 2 - 4)}`, 'rfc9440', 'certificate_malformed'],
      [','.repeat(n), 'base64_encoded', 'certificate_missing'],
      ['A'.repeat(n), 'base64_encoded', 'certificate_malformed'],
    ];
    for (const [value, format, reason] of inputs) {
      const started = process.hrtime.bigint();
      failed(decodeCertificateHeader(value, format, limits), reason);
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      // Linear work here is a few ms; a quadratic scan of 1 MB is minutes. The wide bound keeps a
      // loaded CI machine from failing it without losing the difference.
      assert.ok(ms < 2000, `${format} adversarial input took ${ms.toFixed(1)} ms`);
    }
  });
});

describe('captured from real terminators', () => {
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mtls-pop-header-'));
    await writePemFiles(dir, { root: pki.root, intermediate: pki.intermediate, client: pki.client, server: pki.server });
    writeFileSync(join(dir, 'server-combined.pem'), pki.server.pem + await pki.server.keyPem());
    writeFileSync(join(dir, 'cas.pem'), pki.root.pem + pki.intermediate.pem);
  });
  after(() => { rmSync(dir, { recursive: true, force: true }); });

  test('nginx $ssl_client_escaped_cert and $ssl_client_cert decode to the client DER', async (t) => {
    const nginx = requireExecutable(t, 'nginx');
    if (nginx === null) return;
    const recorder = await startHeadRecorder();
    const port = await freePort();
    const strictPort = await freePort();
    const config = `${nginxPreamble(dir)}
http {
  access_log off;
  ${nginxHttpTempPaths(dir)}
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${join(dir, 'server.pem')};
    ssl_certificate_key ${join(dir, 'server.key')};
    ssl_verify_client optional_no_ca;
    location /escaped { proxy_pass http://127.0.0.1:${recorder.port}; proxy_set_header X-Client-Cert $ssl_client_escaped_cert; }
    location /legacy { proxy_pass http://127.0.0.1:${recorder.port}; proxy_set_header X-Client-Cert $ssl_client_cert; }
    location /legacy-to-nginx { proxy_pass http://127.0.0.1:${strictPort}; proxy_set_header X-Client-Cert $ssl_client_cert; }
  }
  # Stands in for Kong (which is nginx): what does it make of the folded header?
  server { listen 127.0.0.1:${strictPort}; location / { return 200 "seen"; } }
}
`;
    const running = await startNginx(nginx, dir, config, port);
    try {
      const client = { port, caPem: pki.root.pem, certPem: pki.client.pem + pki.intermediate.pem, keyPem: await pki.client.keyPem() };

      assert.equal((await mtlsGet({ ...client, path: '/escaped' })).status, 200);
      const escaped = rawHeaderValue(recorder.heads.at(-1) ?? '', 'X-Client-Cert');
      assert.ok(escaped !== undefined, 'nginx forwarded X-Client-Cert');
      assert.match(escaped, /^-----BEGIN%20CERTIFICATE-----%0A/);
      assert.ok(!/[+/=]/.test(escaped), 'ngx_escape_uri escapes + / =');
      assertDers(decodeCertificateHeader(escaped, 'url_encoded', LIMITS), [pki.client.der]);

      assert.equal((await mtlsGet({ ...client, path: '/legacy' })).status, 200);
      const legacy = rawHeaderValue(recorder.heads.at(-1) ?? '', 'X-Client-Cert');
      assert.ok(legacy !== undefined);
      assert.match(legacy, /^-----BEGIN CERTIFICATE-----\n\t[A-Za-z0-9+/]/, 'folded with bare LF + TAB');
      assertDers(decodeCertificateHeader(legacy, 'pem', LIMITS), [pki.client.der]);
      // RFC 9112 section 5.2: a recipient that accepts obs-fold replaces each fold with SP.
      assertDers(decodeCertificateHeader(legacy.replace(/\r?\n[ \t]+/g, ' '), 'pem', LIMITS), [pki.client.der]);
      // But nginx (and so Kong) refuses the folded header outright: $ssl_client_cert cannot reach the plugin.
      assert.equal((await mtlsGet({ ...client, path: '/legacy-to-nginx' })).status, 400);
    } finally {
      await running.stop();
      await recorder.close();
    }
  });

  test('HAProxy ssl_c_der,base64 (leaf), with ssl_c_chain_der (whole chain) and as RFC 9440', async (t) => {
    const haproxy = requireExecutable(t, 'haproxy');
    if (haproxy === null) return;
    const recorder = await startHeadRecorder();
    const port = await freePort();
    const config = `global
  log stderr format raw local0 err
defaults
  mode http
  timeout connect 5s
  timeout client 5s
  timeout server 5s
frontend tls
  bind 127.0.0.1:${port} ssl crt ${join(dir, 'server-combined.pem')} verify optional ca-file ${join(dir, 'cas.pem')}
  http-request set-header X-Client-Cert %[ssl_c_der,base64]
  http-request set-header X-Client-Cert-Chain %[ssl_c_der,base64],%[ssl_c_chain_der,base64]
  http-request set-header Client-Cert :%[ssl_c_der,base64]:
  default_backend upstream
backend upstream
  server recorder 127.0.0.1:${recorder.port}
`;
    const running = await startHaproxy(haproxy, dir, config, port);
    try {
      const keyPem = await pki.client.keyPem();
      assert.equal((await mtlsGet({ port, caPem: pki.root.pem, certPem: pki.client.pem + pki.intermediate.pem, keyPem, path: '/' })).status, 200);
      const head = recorder.heads.at(-1) ?? '';
      const leaf = rawHeaderValue(head, 'X-Client-Cert');
      assert.equal(leaf, b64(pki.client.der), 'one line of standard base64');
      assertDers(decodeCertificateHeader(leaf ?? '', 'base64_encoded', LIMITS), [pki.client.der]);
      assertDers(decodeCertificateHeader(rawHeaderValue(head, 'X-Client-Cert-Chain') ?? '', 'base64_encoded', LIMITS),
        [pki.client.der, pki.intermediate.der]);
      assertDers(decodeCertificateHeader(rawHeaderValue(head, 'Client-Cert') ?? '', 'rfc9440', LIMITS, null), [pki.client.der]);

      // A client that sends only its leaf: ssl_c_chain_der is empty, the header ends with a comma.
      assert.equal((await mtlsGet({ port, caPem: pki.root.pem, certPem: pki.client.pem, keyPem, path: '/' })).status, 200);
      const chainOfOne = rawHeaderValue(recorder.heads.at(-1) ?? '', 'X-Client-Cert-Chain');
      assert.equal(chainOfOne, `${b64(pki.client.der)},`);
      assertDers(decodeCertificateHeader(chainOfOne ?? '', 'base64_encoded', LIMITS), [pki.client.der]);
    } finally {
      await running.stop();
      await recorder.close();
    }
  });
});
