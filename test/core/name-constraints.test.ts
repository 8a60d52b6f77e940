/**
 * Name constraints on names that do not parse (issue 11 item 8) and the comparison bound (item 4):
 * root -> intermediate with nameConstraints -> leaf, built with the conformance builder.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ChainValidator } from '../../src/chain.js';
import { MAX_NAME_CONSTRAINT_COMPARISONS } from '../../src/name-constraints.js';
import {
  GN, KU, basicConstraints, certificate, dn, ecKey, keyUsage, nameConstraints, subjectAltName, toPem, type Attribute, type Extension, type Key,
} from '../conformance/builder.js';

const NOW = new Date('2025-01-01T00:00:00Z').getTime();
const FROM = new Date('2020-01-01T00:00:00Z');
const TO = new Date('2030-01-01T00:00:00Z');
const ROOT = dn(['CN', 'NC Root']);
const CA = dn(['CN', 'NC CA']);

let rootKey: Key;
let caKey: Key;
let rootDer: Buffer;

before(() => {
  rootKey = ecKey();
  caKey = ecKey();
  rootDer = certificate({
    serial: 1, issuer: ROOT, subject: ROOT, notBefore: FROM, notAfter: TO, key: rootKey, signer: rootKey,
    extensions: [basicConstraints(true), keyUsage([KU.keyCertSign])],
  });
});

async function verdict(constraints: Extension, leafNames: readonly Buffer[], subject: readonly Attribute[] = [['CN', 'leaf']]) {
  const ca = certificate({
    serial: 2, issuer: ROOT, subject: CA, notBefore: FROM, notAfter: TO, key: caKey, signer: rootKey,
    extensions: [basicConstraints(true), keyUsage([KU.keyCertSign]), constraints],
  });
  const leaf = certificate({
    serial: 3, issuer: CA, subject: dn(...subject), notBefore: FROM, notAfter: TO, key: ecKey(), signer: caKey,
    extensions: [keyUsage([KU.digitalSignature]), ...(leafNames.length > 0 ? [subjectAltName(...leafNames)] : [])],
  });
  const validator = ChainValidator.fromPem([toPem(rootDer)], { allowPartialChain: false, cacheSize: 0, cacheTtlMs: 0, now: () => NOW });
  assert.ok(validator.ok);
  return validator.value.validate([leaf, ca]);
}

async function refused(constraints: Extension, names: readonly Buffer[], detail: RegExp, subject?: readonly Attribute[]): Promise<void> {
  const result = await verdict(constraints, names, subject);
  assert.equal(result.ok, false, 'expected certificate_chain_invalid, got a valid path');
  if (result.ok) return;
  assert.equal(result.error.reason, 'certificate_chain_invalid', result.error.detail);
  assert.match(result.error.detail, detail);
}

async function accepted(constraints: Extension, names: readonly Buffer[], subject?: readonly Attribute[]): Promise<void> {
  const result = await verdict(constraints, names, subject);
  assert.ok(result.ok, result.ok ? '' : `${result.error.reason}: ${result.error.detail}`);
}

describe('rfc822Name constraints (item 8)', () => {
  const excluded = nameConstraints([], [GN.email('example.com')]);
  it('a SAN rfc822Name without @ or with an empty local part does not escape an excluded subtree', async () => {
    await refused(excluded, [GN.email('example.com')], /rfc822Name example\.com is not a mailbox/);
    await refused(excluded, [GN.email('@example.com')], /rfc822Name @example\.com is not a mailbox/);
    await refused(excluded, [GN.email('user@')], /not a mailbox/);
    await refused(excluded, [GN.email('a@b@example.com')], /not a mailbox/);
    await refused(excluded, [GN.email('user@example.com.')], /not a mailbox/);
  });

  it('the same names are refused under a permitted subtree; mailboxes inside and outside are judged', async () => {
    const permitted = nameConstraints([GN.email('example.com')]);
    await refused(permitted, [GN.email('nobody')], /not a mailbox/);
    await accepted(permitted, [GN.email('user@EXAMPLE.com')]);
    await accepted(permitted, [GN.email('"a@b"@example.com')]);
    await refused(permitted, [GN.email('user@other.test')], /outside the permitted subtrees/);
    await refused(excluded, [GN.email('user@Example.COM')], /in an excluded subtree/);
  });

  it('emailAddress in the subject DN is checked as an rfc822Name (RFC 5280 4.2.1.10), unparseable ones refused', async () => {
    await refused(excluded, [], /rfc822Name user@example\.com is in an excluded subtree/, [['CN', 'leaf'], ['emailAddress', 'user@example.com']]);
    await refused(excluded, [], /rfc822Name example\.com is not a mailbox/, [['CN', 'leaf'], ['emailAddress', 'example.com']]);
    await accepted(excluded, [], [['CN', 'leaf'], ['emailAddress', 'user@other.test']]);
  });

  it('unparseable mailboxes pass when no email constraint applies (nothing to judge)', async () => {
    await accepted(nameConstraints([GN.dns('example.com')]), [GN.dns('a.example.com'), GN.email('not-a-mailbox')]);
  });
});

describe('dNSName, URI and iPAddress siblings', () => {
  const excludedDns = nameConstraints([], [GN.dns('example.com')]);
  it('DNS names with empty labels or a trailing dot are refused; case is folded', async () => {
    await refused(excludedDns, [GN.dns('evil.example.com..')], /not a valid DNS name/);
    await refused(excludedDns, [GN.dns('evil..example.com')], /not a valid DNS name/);
    await refused(excludedDns, [GN.dns('evil.example.com.')], /not a valid DNS name/);
    await refused(excludedDns, [GN.dns('.example.com')], /not a valid DNS name/);
    await refused(excludedDns, [GN.dns('EVIL.Example.COM')], /in an excluded subtree/);
    await refused(excludedDns, [GN.dns('*.example.com')], /in an excluded subtree/);
    await accepted(excludedDns, [GN.dns('example.org'), GN.dns('*.example.net')]);
  });

  it('URI hosts: userinfo tricks, IP literals and percent-encoding are refused under URI constraints', async () => {
    const excludedUri = nameConstraints([], [GN.uri('evil.com')]);
    await refused(excludedUri, [GN.uri('https://a@b@evil.com/')], /no DNS host/);
    await refused(excludedUri, [GN.uri('https://%65vil.com/')], /no DNS host/);
    await refused(excludedUri, [GN.uri('https://[::1]/')], /no DNS host/);
    await refused(excludedUri, [GN.uri('https://evil.com./')], /no DNS host/);
    await refused(excludedUri, [GN.uri('HTTPS://user@EVIL.com:443/x')], /in an excluded subtree/);
    await accepted(excludedUri, [GN.uri('spiffe://good.example/ns/a')]);
  });

  it('an iPAddress SAN of a wrong length does not escape an excluded range; a non-contiguous mask is refused', async () => {
    const excludedIp = nameConstraints([], [GN.ip([10, 0, 0, 0, 255, 0, 0, 0])]);
    await refused(excludedIp, [GN.ip([10, 1, 2, 3, 4])], /iPAddress of 5 octets/);
    await refused(excludedIp, [GN.ip([10, 1, 2, 3])], /in an excluded subtree/);
    await accepted(excludedIp, [GN.ip([192, 168, 0, 1])]);
    await refused(nameConstraints([GN.ip([10, 0, 0, 0, 255, 0, 255, 0])]), [GN.ip([10, 1, 2, 3])], /not supported \(ip \(mask not contiguous\)\)/);
  });
});

describe('comparison bound (item 4)', () => {
  it(`names x subtrees beyond ${MAX_NAME_CONSTRAINT_COMPARISONS} is refused; below it is evaluated`, async () => {
    const subtrees = Array.from({ length: 200 }, (_, i) => GN.dns(`d${i}.example`));
    const many = Array.from({ length: 100 }, (_, i) => GN.dns(`h.d${i}.example`));
    await refused(nameConstraints(subtrees), many, /more than 16384 name constraint comparisons/);
    await accepted(nameConstraints(subtrees), many.slice(0, 50));
  });
});
