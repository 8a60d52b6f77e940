/**
 * The bounded HTTP client every outbound request goes through (JWKS, revocation responders, Kong
 * Admin API): deadline, size cap, no redirects, POST bodies, the plain-http proxy, and the error
 * kinds callers phrase their failure details from. Servers listen on 127.0.0.1, port 0.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describeNetworkError, getJson, HttpError, httpRequest, type HttpErrorCode } from '../../src/http.js';

interface Seen { method: string; url: string; host: string; body: string; headers: http.IncomingHttpHeaders }

let server: http.Server;
let base: string;
let deadPort: number;
const seen: Seen[] = [];

before(async () => {
  server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      seen.push({
        method: request.method ?? '', url: request.url ?? '', host: request.headers.host ?? '',
        body: Buffer.concat(chunks).toString('latin1'), headers: request.headers,
      });
      const path = new URL(request.url ?? '/', 'http://x').pathname;
      switch (path) {
        case '/json': response.writeHead(200, { 'content-type': 'application/json' }).end('{"a":1}'); return;
        case '/echo': response.writeHead(200).end(Buffer.concat(chunks)); return;
        case '/status500': response.writeHead(500).end('oops'); return;
        case '/redirect': response.writeHead(302, { location: '/json', 'content-length': 0 }).end(); return;
        case '/declared-large': response.writeHead(200, { 'content-length': 1000 }).end(Buffer.alloc(1000)); return;
        case '/chunked-large': response.writeHead(200); response.write(Buffer.alloc(600)); response.end(Buffer.alloc(600)); return;
        case '/cut': response.writeHead(200, { 'content-length': 100 }); response.write(Buffer.alloc(10), () => response.socket?.destroy()); return;
        case '/reset': request.socket.destroy(); return;
        case '/hang': return;
        default: response.writeHead(404).end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const closed = http.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  deadPort = (closed.address() as AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
});

after(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

async function rejection(promise: Promise<unknown>, code: HttpErrorCode): Promise<HttpError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof HttpError, `not an HttpError: ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return error;
  }
  assert.fail(`expected an HttpError ${code}, got an answer`);
}

const LIMITS = { timeoutMs: 2000, maxBytes: 500 };

describe('bounded HTTP client', () => {
  test('GET answers with status, headers and body; the Host header names the target', async () => {
    const response = await httpRequest(`${base}/json?x=1`, LIMITS);
    assert.equal(response.status, 200);
    assert.equal(response.headers['content-type'], 'application/json');
    assert.equal(response.body.toString(), '{"a":1}');
    const request = seen.at(-1);
    assert.equal(request?.method, 'GET');
    assert.equal(request?.url, '/json?x=1');
    assert.equal(request?.host, new URL(base).host);
    assert.equal(request?.headers.accept, 'application/json');
  });

  test('POST sends the body with its length and the caller\'s headers', async () => {
    const body = Buffer.from([0x30, 0x03, 0x02, 0x01, 0x05]);
    const response = await httpRequest(`${base}/echo`, {
      ...LIMITS, method: 'POST', body, headers: { 'content-type': 'application/ocsp-request', accept: 'application/ocsp-response' },
    });
    assert.deepEqual(response.body, body);
    const request = seen.at(-1);
    assert.equal(request?.method, 'POST');
    assert.equal(request?.headers['content-length'], '5');
    assert.equal(request?.headers['content-type'], 'application/ocsp-request');
    assert.equal(request?.headers.accept, 'application/ocsp-response');
  });

  test('without expectStatus any status is an answer; with it, another status is code "status"', async () => {
    assert.equal((await httpRequest(`${base}/status500`, LIMITS)).status, 500);
    const error = await rejection(httpRequest(`${base}/status500`, { ...LIMITS, expectStatus: 200 }), 'status');
    assert.equal(error.status, 500);
    assert.equal(error.message, `${base} answered HTTP 500`);
  });

  test('redirects are not followed', async () => {
    const before = seen.length;
    assert.equal((await httpRequest(`${base}/redirect`, LIMITS)).status, 302);
    assert.equal((await rejection(httpRequest(`${base}/redirect`, { ...LIMITS, expectStatus: 200 }), 'status')).status, 302);
    assert.equal(seen.length - before, 2, 'no request to the Location');
  });

  test('a body over the cap is too_large, from the Content-Length or from the bytes received', async () => {
    const declared = await rejection(httpRequest(`${base}/declared-large`, LIMITS), 'too_large');
    assert.equal(declared.declaredBytes, 1000);
    assert.equal(declared.message, `${base} answered with 1000 bytes (limit 500)`);
    const streamed = await rejection(httpRequest(`${base}/chunked-large`, LIMITS), 'too_large');
    assert.equal(streamed.declaredBytes, null);
    assert.equal(streamed.message, `${base} sent more than 500 bytes`);
  });

  test('the deadline covers the whole exchange: timeout', async () => {
    const started = Date.now();
    const error = await rejection(httpRequest(`${base}/hang`, { ...LIMITS, timeoutMs: 200 }), 'timeout');
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 195 && elapsed < 1500, `elapsed ${elapsed} ms`);
    assert.equal(error.message, `${base} did not answer within 200 ms`);
  });

  test('refused and reset connections are code "network" with the socket error code', async () => {
    const refused = await rejection(httpRequest(`http://127.0.0.1:${deadPort}/`, LIMITS), 'network');
    assert.equal(refused.errorCode, 'ECONNREFUSED');
    assert.equal(describeNetworkError(refused.errorCode), 'connection refused');
    const reset = await rejection(httpRequest(`${base}/reset`, LIMITS), 'network');
    assert.equal(describeNetworkError(reset.errorCode), 'connection reset');
  });

  test('an answer cut off in the middle of the body is code "cut_off"', async () => {
    await rejection(httpRequest(`${base}/cut`, LIMITS), 'cut_off');
  });

  test('unusable URLs fail before any request', async () => {
    const before = seen.length;
    assert.equal((await rejection(httpRequest('not a url', LIMITS), 'bad_url')).message, 'invalid URL');
    assert.equal((await rejection(httpRequest('ftp://127.0.0.1/x', LIMITS), 'bad_url')).message, 'unsupported URL scheme ftp:');
    assert.equal((await rejection(httpRequest(`${base}/json`, { ...LIMITS, httpProxy: '::' }), 'bad_url')).message, 'invalid http_proxy URL');
    assert.equal((await rejection(httpRequest(`${base}/json`, { ...LIMITS, httpProxy: 'https://127.0.0.1:1' }), 'bad_url')).message,
      'http_proxy must be an http:// URL');
    assert.equal(seen.length, before);
  });

  test('httpProxy carries plain-http requests in absolute form, with Basic proxy credentials', async () => {
    const response = await httpRequest('http://responder.invalid:8080/json?q=1', {
      ...LIMITS, httpProxy: `http://user:p%40ss@${new URL(base).host}`,
    });
    assert.equal(response.body.toString(), '{"a":1}');
    const request = seen.at(-1);
    assert.equal(request?.url, 'http://responder.invalid:8080/json?q=1');
    assert.equal(request?.host, 'responder.invalid:8080');
    assert.equal(request?.headers['proxy-authorization'], `Basic ${Buffer.from('user:p@ss').toString('base64')}`);
    const error = await rejection(httpRequest('http://responder.invalid/hang', {
      ...LIMITS, timeoutMs: 100, httpProxy: `http://127.0.0.1:${deadPort}`,
    }), 'network');
    assert.equal(error.proxy, `127.0.0.1:${deadPort}`);
  });

  test('getJson: 2xx JSON is parsed; non-2xx and non-JSON reject with the origin named', async () => {
    assert.deepEqual(await getJson(`${base}/json`, LIMITS), { a: 1 });
    const status = await rejection(getJson(`${base}/status500`, LIMITS), 'status');
    assert.equal(status.message, `${base} answered HTTP 500`);
    assert.equal(status.status, 500);
    assert.equal((await rejection(getJson(`${base}/echo`, LIMITS), 'network')).message, `${base} did not answer with JSON`);
  });
});

describe('describeNetworkError', () => {
  test('names common socket and TLS failures by their code only', () => {
    assert.equal(describeNetworkError('ENOTFOUND'), 'host name not resolved');
    assert.equal(describeNetworkError('EHOSTUNREACH'), 'host unreachable');
    assert.equal(describeNetworkError('EPIPE'), 'connection reset');
    assert.equal(describeNetworkError('UNABLE_TO_VERIFY_LEAF_SIGNATURE'), 'TLS certificate rejected (UNABLE_TO_VERIFY_LEAF_SIGNATURE)');
    assert.equal(describeNetworkError('ERR_TLS_CERT_ALTNAME_INVALID'), 'TLS certificate rejected (ERR_TLS_CERT_ALTNAME_INVALID)');
    assert.equal(describeNetworkError('EMFILE'), 'network error (EMFILE)');
    assert.equal(describeNetworkError(null), 'network error');
  });
});
