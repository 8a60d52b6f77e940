/**
 * Key pairs for tests, as KeyObjects imported from PEM.
 *
 * Node 20 can deadlock when a KeyObject returned by `generateKeyPairSync` is exported as a JWK
 * while a garbage collection finalises the key-generation job: `ExportJWK` holds the key's mutex,
 * allocates, the GC runs `~KeyGenJob`, which waits for the same mutex (seen as a test process
 * stuck in futex_wait with that backtrace). Keys generated straight to PEM and re-imported share
 * nothing with the job, so exporting them is safe.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';

export type KeyPairType = 'rsa' | 'rsa-pss' | 'ec' | 'ed25519' | 'ed448' | 'x25519';

export interface KeyPairOptions {
  readonly modulusLength?: number;
  readonly publicExponent?: number;
  /** EC: P-256, P-384, P-521, secp256k1, ... */
  readonly namedCurve?: string;
}

export function keyPair(type: KeyPairType, options: KeyPairOptions = {}): { publicKey: KeyObject; privateKey: KeyObject } {
  const generate = generateKeyPairSync as (type: string, options: object) => { publicKey: string; privateKey: string };
  const pem = generate(type, {
    ...options, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { publicKey: createPublicKey(pem.publicKey), privateKey: createPrivateKey(pem.privateKey) };
}
