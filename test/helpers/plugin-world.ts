/**
 * The set-up the plugin tests share: a test PKI, a JWKS server (the IdP), an echo upstream, the
 * emulated Admin API serving the root CA as a CA certificate entity (listening before the routes
 * name its port), and the Kong emulator driving the REAL plugin server (the compiled plugins/
 * directory) with the given routes.
 */
import { join } from 'node:path';
import { AdminApiEmulator, KongEmulator, launcherCommand, startEchoUpstream, type EchoUpstream, type RouteConfig } from '../harness/kong-emulator.js';
import { makeTestPki, type TestPki } from './pki.js';
import { startJwksServer, type JwksServer } from './jwks-server.js';

const PLUGINS_DIR = join(__dirname, '..', '..', 'plugins');

/** What the routes are built from (and what a test file keeps in its own variables). */
export interface PluginWorldBase {
  readonly pki: TestPki;
  readonly idp: JwksServer;
  readonly echo: EchoUpstream;
  /** The emulated Admin API's port (`admin_api_url`). */
  readonly adminPort: number;
}

export interface PluginWorld extends PluginWorldBase {
  readonly emu: KongEmulator;
  /** Stops the emulator (and the plugin server), the upstream and the IdP. */
  close(): Promise<void>;
}

/**
 * Starts everything; `routes` is called once the PKI, IdP, upstream and Admin API port exist,
 * before the emulator starts. The root CA is served as the CA certificate entity `caUuid`.
 */
export async function startPluginWorld(
  caUuid: string,
  routes: (base: PluginWorldBase) => readonly RouteConfig[] | Promise<readonly RouteConfig[]>,
): Promise<PluginWorld> {
  const pki = await makeTestPki();
  // Bound now, on a port the kernel picks: a port probed free and bound later may be taken meanwhile.
  const adminApi = await AdminApiEmulator.start({ ca_certificates: { [caUuid]: pki.root.pem } });
  const base: PluginWorldBase = { pki, idp: await startJwksServer(), echo: await startEchoUpstream(), adminPort: adminApi.port };
  const emu = await KongEmulator.start({
    pluginServer: launcherCommand(PLUGINS_DIR),
    rpcTimeoutMs: 5000,
    config: {
      routes: await routes(base),
      trusted_ips: ['127.0.0.1'],
      adminApi: { server: adminApi },
    },
  });
  return {
    ...base,
    emu,
    async close() {
      await emu.close();
      await base.echo.close();
      await base.idp.close();
    },
  };
}

/** A response header's value, by name in any case. */
export function responseHeader(response: { headers: ReadonlyArray<readonly [string, string]> } | undefined, name: string): string | undefined {
  return response?.headers.find(([n]) => n.toLowerCase() === name.toLowerCase())?.[1];
}
