/**
 * Command line of the plugin server: the same flags as kong-pdk's `kong-js-pluginserver`
 * (`cli.js`), so it drops into `pluginserver_<name>_start_cmd` / `_query_cmd` unchanged.
 */
import { isAbsolute, resolve } from 'node:path';

/**
 * The package's own plugins directory (dist/plugins next to dist/bin), used when -d is absent, so
 * that an installed `mtls-pop-pluginserver` (npm install -g) needs no path to itself.
 */
export const PACKAGE_PLUGINS_DIRECTORY = resolve(__dirname, '..', '..', 'plugins');

export interface CliOptions {
  /** Absolute plugins directory (kong-pdk `require`s plugins by path; a relative one fails). */
  readonly pluginsDirectory: string;
  readonly kongPrefix: string;
  readonly sockName: string;
  readonly dumpAllPlugins: boolean;
  readonly dumpPluginInfo: string | undefined;
  /** Number of `-v` given; 0 logs at info, 1 or more at debug (still without RPC arguments). */
  readonly verbose: number;
  /**
   * Port of the Prometheus endpoint (`--metrics-port`, else env `MTLS_POP_METRICS_PORT`); null:
   * metrics are not served (the default). Kong starts the server with a cleared environment, so
   * the flag in `pluginserver_<name>_start_cmd` is the reliable way.
   */
  readonly metricsPort: number | null;
  /** Address the metrics endpoint binds to (`--metrics-host`, default 127.0.0.1). */
  readonly metricsHost: string;
  /** Worker processes behind one socket (`--workers`, default 1: the single-process server). */
  readonly workers: number;
}

export type CliParse =
  | { readonly kind: 'run'; readonly options: CliOptions }
  | { readonly kind: 'help' }
  | { readonly kind: 'version' }
  | { readonly kind: 'error'; readonly message: string };

export const USAGE = `Usage: mtls-pop-pluginserver [-d <dir>] [options]

Kong external plugin server for mtls-pop (kong-pdk protocol).

Options:
  -d, --plugins-directory <dir>  plugins directory (default: this package's plugins,
                                 i.e. mtls-pop)
  -p, --kong-prefix <prefix>     directory of the Unix socket (default: /usr/local/kong)
  --sock-name <name>             socket file name (default: js_pluginserver.sock)
  --dump-all-plugins             print every plugin's info as JSON on stdout and exit
                                 (alias: -dump, Kong's default query command suffix)
  --dump-plugin-info <name>      print one plugin's info as MessagePack on stdout and exit
  --metrics-port <port>          serve Prometheus metrics on GET /metrics at this port
                                 (default: env MTLS_POP_METRICS_PORT, else off)
  --metrics-host <address>       address of the metrics endpoint (default: 127.0.0.1)
  --workers <n>                  worker processes behind the one socket, 1-64 (default: 1);
                                 see docs/plugin-server.md
  -v, --verbose                  debug logging (repeatable); never logs RPC arguments
  --version                      print the version
  -h, --help                     this help
`;

type ValueFlag = 'pluginsDirectory' | 'kongPrefix' | 'sockName' | 'dumpPluginInfo' | 'metricsPort' | 'metricsHost' | 'workers';

const VALUE_FLAGS: Readonly<Record<string, ValueFlag>> = {
  '-d': 'pluginsDirectory', '--plugins-directory': 'pluginsDirectory', '-plugins-directory': 'pluginsDirectory',
  '-p': 'kongPrefix', '--kong-prefix': 'kongPrefix', '-kong-prefix': 'kongPrefix',
  '--sock-name': 'sockName',
  '--dump-plugin-info': 'dumpPluginInfo', '-dump-plugin-info': 'dumpPluginInfo',
  '--metrics-port': 'metricsPort', '--metrics-host': 'metricsHost',
  '--workers': 'workers',
};

/** Most workers `--workers` accepts. */
export const MAX_WORKERS = 64;

/** Environment fallback of `--metrics-port`. */
export const METRICS_PORT_ENV = 'MTLS_POP_METRICS_PORT';

/** A TCP port 0..65535 written in decimal digits, else null. */
function parsePort(value: string): number | null {
  if (!/^[0-9]{1,5}$/.test(value)) return null;
  const port = Number(value);
  return port <= 65535 ? port : null;
}

const DUMP_ALL_FLAGS = new Set(['--dump-all-plugins', '-dump-all-plugins', '--dump', '-dump']);

/**
 * Parses `argv` (without node and script), resolving relative directories against `cwd`; `env`
 * supplies `MTLS_POP_METRICS_PORT` when `--metrics-port` is absent. Without -d the plugins
 * directory is `defaultPluginsDirectory` (the launcher passes PACKAGE_PLUGINS_DIRECTORY); when
 * that is undefined too, -d is required, as in kong-js-pluginserver.
 */
export function parseCli(
  argv: readonly string[], cwd: string = process.cwd(), env: NodeJS.ProcessEnv = process.env,
  defaultPluginsDirectory?: string,
): CliParse {
  const values: Partial<Record<ValueFlag, string>> = {};
  let dumpAllPlugins = false;
  let verbose = 0;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const eq = arg.startsWith('-') ? arg.indexOf('=') : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const valueFlag = VALUE_FLAGS[flag];
    if (valueFlag !== undefined) {
      const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
      if (value === undefined || value === '') return { kind: 'error', message: `option '${flag}' argument missing` };
      values[valueFlag] = value;
    } else if (DUMP_ALL_FLAGS.has(arg)) {
      dumpAllPlugins = true;
    } else if (arg === '--verbose' || /^-v+$/.test(arg)) {
      verbose += arg === '--verbose' ? 1 : arg.length - 1;
    } else if (arg === '--version') {
      return { kind: 'version' };
    } else if (arg === '-h' || arg === '--help') {
      return { kind: 'help' };
    } else {
      return { kind: 'error', message: `unknown option '${arg}'` };
    }
  }
  const dir = values.pluginsDirectory ?? defaultPluginsDirectory;
  if (dir === undefined) {
    return { kind: 'error', message: "required option '-d, --plugins-directory <dir>' not specified" };
  }
  let metricsPort: number | null = null;
  const portText = values.metricsPort ?? (env[METRICS_PORT_ENV] === '' ? undefined : env[METRICS_PORT_ENV]);
  if (portText !== undefined) {
    metricsPort = parsePort(portText);
    if (metricsPort === null) {
      const source = values.metricsPort !== undefined ? "option '--metrics-port'" : METRICS_PORT_ENV;
      return { kind: 'error', message: `${source}: '${portText.slice(0, 20)}' is not a port number (0-65535)` };
    }
  }
  let workers = 1;
  if (values.workers !== undefined) {
    workers = /^[0-9]{1,2}$/.test(values.workers) ? Number(values.workers) : 0;
    if (workers < 1 || workers > MAX_WORKERS) {
      return { kind: 'error', message: `option '--workers': '${values.workers.slice(0, 20)}' is not a number from 1 to ${MAX_WORKERS}` };
    }
  }
  return {
    kind: 'run',
    options: {
      pluginsDirectory: isAbsolute(dir) ? dir : resolve(cwd, dir),
      kongPrefix: values.kongPrefix ?? '/usr/local/kong',
      sockName: values.sockName ?? 'js_pluginserver.sock',
      dumpAllPlugins,
      dumpPluginInfo: values.dumpPluginInfo,
      verbose,
      metricsPort,
      metricsHost: values.metricsHost ?? '127.0.0.1',
      workers,
    },
  };
}
