/**
 * The `kong` object a handler receives: the same bridge as kong-pdk 0.6.0's `pdk.js` (every dotted
 * name is callable, camelCase turns into snake_case with kong-pdk's exact rule, a call sends
 * `{Method, Args}` to Kong and resolves with the first value Kong returns, `kong.response.exit` and
 * `kong.response.error` resolve at once), without kong-pdk's per-event channel pair: the call is
 * handed straight to the event (server.ts), and converted names are cached.
 */

/** kong-pdk `pdk.js` PDKError: what a handler sees when Kong answers a call with StepError. */
export class PDKError extends Error {
  override get name(): string {
    return 'PDKError';
  }
}

/** PDK methods that end the request: kong-pdk `pdk.js` NON_RETURN_METHODS. Kong sends no Step after them. */
export const NON_RETURNING_METHODS: ReadonlySet<string> = new Set(['kong.response.exit', 'kong.response.error']);

/** Receives each call a handler makes; returns what the handler's `await` gets. */
export type PdkCall = (method: string, args: unknown[]) => Promise<unknown>;

const snakeNames = new Map<string, string>();

/** kong-pdk's rule: every lower-case letter followed by an upper-case one gets an underscore between, both lower-cased. */
function snake(name: string): string {
  let converted = snakeNames.get(name);
  if (converted === undefined) {
    converted = name.replace(/[a-z][A-Z]/g, (pair) => `${pair.charAt(0)}_${pair.charAt(1)}`.toLowerCase());
    if (snakeNames.size < 10_000) snakeNames.set(name, converted);
  }
  return converted;
}

interface BridgeTarget {
  (...args: unknown[]): Promise<unknown>;
  path: string;
  call: PdkCall;
}

const handler: ProxyHandler<BridgeTarget> = {
  get(target, name) {
    // kong-pdk maps every property, symbols included, to a deeper name; a symbol has no PDK function.
    const key = typeof name === 'symbol' ? String(name) : snake(name);
    return bridge(`${target.path}.${key}`, target.call);
  },
};

function bridge(path: string, call: PdkCall): unknown {
  const target = function bridgeCall(...args: unknown[]): Promise<unknown> {
    return call(path, args);
  } as BridgeTarget;
  target.path = path;
  target.call = call;
  return new Proxy(target, handler);
}

/** The `kong` argument of a handler whose calls go to `call`. */
export function newKong(call: PdkCall): unknown {
  return bridge('kong', call);
}
