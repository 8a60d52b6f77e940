/**
 * Section 6, the plugin server's MessagePack codec on Kong's frames (issue 14): kong-pdk's
 * `@msgpack/msgpack` 2.8, `msgpackr` (the fastest JavaScript MessagePack on npm; a dev
 * dependency here, for this comparison only) and ours (bin/pluginserver/codec.ts). Frames as Kong
 * 3.9's `mp_rpc.lua` sends them (HandleEvent, a StepMultiMap with a certificate chain and a bearer
 * token, Steps with and without Data) and answers as the server writes them. Contenders are
 * interleaved; each op decodes (or encodes) one frame, cycling through the set.
 */
import { Decoder, Encoder } from '@msgpack/msgpack';
import { Packr, Unpackr } from 'msgpackr';
import { decodeValue, encodeResponse } from '../../bin/pluginserver/codec.js';
import { check, fmt, interleave, type BenchScale, type Contender, type Figure, type Log } from './common.js';
import { CERT_HEADER, haproxyHeader, boundToken, type BenchInputs } from './inputs.js';

const SECTION = 'plugin-server codec';

export async function runCodec(inputs: BenchInputs, scale: BenchScale, log: Log): Promise<Figure[]> {
  const eventId = 2 ** 40 + 12_345;
  const token = boundToken(inputs, inputs.pki.client, inputs.rsaKey);
  const requests = [
    [0, 17, 'plugin.HandleEvent', [{ InstanceId: 2 ** 34 + 16, EventName: 'access' }]],
    [0, 18, 'plugin.StepMultiMap', [{ EventId: eventId, Data: {
      host: ['api.example'], authorization: [`Bearer ${token}`], [CERT_HEADER]: [haproxyHeader(inputs, inputs.pki.client)],
      'user-agent': ['curl/8.5.0'], accept: ['*/*'], 'x-forwarded-for': ['10.0.0.7'],
    } }]],
    [0, 19, 'plugin.Step', [{ EventId: eventId, Data: '127.0.0.1' }]],
    [0, 20, 'plugin.Step', [{ EventId: eventId, Data: true }]],
    [0, 21, 'plugin.Step', [{ EventId: eventId }]],
  ];
  const answers: Array<[number, string | undefined, unknown]> = [
    [17, undefined, { EventId: eventId, Data: { Method: 'kong.request.get_headers', Args: [1000] } }],
    [18, undefined, { EventId: eventId, Data: { Method: 'kong.client.get_ip', Args: [] } }],
    [19, undefined, { EventId: eventId, Data: { Method: 'kong.ctx.shared.set', Args: ['mtls_pop_verified', true] } }],
    [20, undefined, { EventId: eventId, Data: 'ret' }],
    [21, undefined, { EventId: eventId, Data: { Method: 'kong.response.exit', Args: [401, { message: 'Unauthorized' }, { 'WWW-Authenticate': 'Bearer realm="api", error="invalid_token"' }] } }],
  ];
  const encoder = new Encoder();
  const decoder = new Decoder();
  const packr = new Packr({ useRecords: false, encodeUndefinedAsNil: true });
  const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });
  const frames = requests.map((r) => Buffer.from(encoder.encode(r)));
  for (const frame of frames) {
    check(JSON.stringify(decodeValue(frame, 0, frame.length)) === JSON.stringify(decoder.decode(frame)), 'our decoder differs from @msgpack/msgpack');
    check(JSON.stringify(unpackr.unpack(frame)) === JSON.stringify(decoder.decode(frame)), 'msgpackr decodes differently');
  }
  let msgpackrSameBytes = true;
  for (const [id, err, result] of answers) {
    const reference = Buffer.from(encoder.encode([1, id, err, result]));
    check(encodeResponse(id, err, result).equals(reference), 'our encoder writes other bytes than @msgpack/msgpack');
    if (!packr.pack([1, id, err, result]).equals(reference)) msgpackrSameBytes = false;
  }
  log(`codec: ${frames.length} request frames (${frames.map((f) => f.length).join(', ')} bytes), ${answers.length} answers; msgpackr writes ${msgpackrSameBytes ? 'the same' : 'other'} bytes (ids past 2^32 as float64)`);
  const sync = (fn: (i: number) => unknown) => (i: number): Promise<unknown> => {
    for (let k = 0; k < 100; k++) fn(i * 100 + k);
    return Promise.resolve();
  };
  const contenders: Contender[] = [
    { name: 'decode-msgpack', op: sync((i) => decoder.decode(frames[i % frames.length] as Buffer)) },
    { name: 'decode-msgpackr', op: sync((i) => unpackr.unpack(frames[i % frames.length] as Buffer)) },
    { name: 'decode-ours', op: sync((i) => { const f = frames[i % frames.length] as Buffer; return decodeValue(f, 0, f.length); }) },
    { name: 'encode-msgpack', op: sync((i) => { const [id, err, r] = answers[i % answers.length] as [number, string | undefined, unknown]; return encoder.encode([1, id, err, r]); }) },
    { name: 'encode-msgpackr', op: sync((i) => { const [id, err, r] = answers[i % answers.length] as [number, string | undefined, unknown]; return packr.pack([1, id, err, r]); }) },
    { name: 'encode-ours', op: sync((i) => { const [id, err, r] = answers[i % answers.length] as [number, string | undefined, unknown]; return encodeResponse(id, err, r); }) },
  ];
  const results = await interleave(contenders, { rounds: scale.coreRounds, batch: Math.max(1, Math.floor(scale.warmBatch / 20)) });
  const perFrame = (name: string): number => {
    const summary = results.get(name)?.summary();
    if (summary === undefined) throw new Error(`no samples for ${name}`);
    return 1e6 / (summary.opsPerS * 100);
  };
  const figures: Figure[] = [];
  for (const [key, label] of [
    ['decode-msgpack', 'decode, @msgpack/msgpack 2.8 (kong-pdk)'], ['decode-msgpackr', 'decode, msgpackr 2.1'], ['decode-ours', 'decode, ours'],
    ['encode-msgpack', 'encode answer, @msgpack/msgpack 2.8 (kong-pdk)'], ['encode-msgpackr', 'encode answer, msgpackr 2.1'], ['encode-ours', 'encode answer, ours'],
  ] as const) {
    figures.push({ section: SECTION, name: `${label}: per frame`, value: perFrame(key), unit: 'us' });
  }
  figures.push({
    section: SECTION, name: 'decode + encode: kong-pdk\'s / ours', value: (perFrame('decode-msgpack') + perFrame('encode-msgpack')) / (perFrame('decode-ours') + perFrame('encode-ours')), unit: 'x',
    note: `msgpackr ${fmt((perFrame('decode-msgpack') + perFrame('encode-msgpack')) / (perFrame('decode-msgpackr') + perFrame('encode-msgpackr')), 2)}x`,
  });
  return figures;
}
