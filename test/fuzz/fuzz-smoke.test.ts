/**
 * The fuzz targets of `npm run fuzz`, with small counts (a few seconds in `npm test`): every
 * target, the same invariants, a fixed seed so that CI is reproducible. A failure names the seed
 * and target to replay with the long runner and prints the input (hex).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { runTarget } from './engine.js';
import { Rng } from './rng.js';
import { TARGETS } from './targets.js';
import { buildWorld, type World } from './world.js';

const SEED = 20_250_601;
/** Inputs per target: about 4,000 in all. */
const RUNS: Readonly<Record<string, number>> = {
  'header-base64_encoded': 400, 'header-url_encoded': 400, 'header-pem': 400, 'header-xfcc': 250, 'header-rfc9440': 400,
  certificate: 500, chain: 400, bearer: 600, token: 300, verifier: 400,
};

let world: World;
before(async () => {
  world = await buildWorld();
});
after(async () => {
  await world.close();
});

describe('fuzz smoke (the npm run fuzz targets, small counts)', () => {
  test('the seeded generator replays: one seed gives one input', () => {
    for (const target of TARGETS) {
      const a = target.generate(world, new Rng(12345)).input;
      const b = target.generate(world, new Rng(12345)).input;
      assert.deepEqual(a, b, target.name);
    }
  });

  for (const target of TARGETS) {
    test(`${target.name}: ${target.description}`, async () => {
      const runs = RUNS[target.name] ?? 200;
      const report = await runTarget(target, world, SEED, runs);
      if (report.failure !== null) {
        assert.fail(`${report.failure.error}\nreplay: npm run fuzz -- --seed ${report.failure.seed} --target ${target.name} --runs 1\n${report.failure.input.slice(0, 4000)}`);
      }
      assert.equal(report.runs, runs);
      // The inputs reach both outcomes (else the acceptance invariants prove nothing).
      assert.ok(report.accepted > 0, `${target.name}: nothing was accepted`);
      assert.ok(report.accepted < runs, `${target.name}: everything was accepted`);
    });
  }

  test('the valid pair is allowed by every verifier, and a one-byte change to its leaf is not', async () => {
    for (const [format, verifier] of Object.entries(world.verifiers)) {
      const seed = world.factSeeds[format as keyof typeof world.factSeeds][0];
      assert.ok(seed !== undefined);
      assert.equal((await verifier.verify(seed)).allow, true, format);
    }
    const tampered = Buffer.from(world.pair.leaf);
    tampered[tampered.length - 5] = (tampered[tampered.length - 5] as number) ^ 0x01;
    const decision = await world.verifiers.base64_encoded.verify({
      authorization: [`Bearer ${world.pair.token}`],
      certificateHeader: [`${tampered.toString('base64')},${(world.pair.chain[1] as Buffer).toString('base64')}`],
      peerTrusted: true,
    });
    assert.equal(decision.allow, false);
    // The token is bound to the genuine leaf: the changed one is refused before path validation.
    assert.equal(!decision.allow && decision.failure.reason, 'certificate_thumbprint_mismatch');
  });
});
