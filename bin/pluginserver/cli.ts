/**
 * Command line of the plugin server: the same flags as kong-pdk's `kong-js-pluginserver`
 * (`cli.js`), so it drops into `pluginserver_<name>_start_cmd` / `_query_cmd` unchanged.
 */
import { isAbsolute, resolve } from 'node:path';

export interface CliOptions {
  /** Absolute plugins directory (kong-pdk `require`s plugins by path; a relative one fails). */
  readonly pluginsDirectory: string;
  readonly kongPrefix: string;
  readonly sockName: string;
  readonly dumpAllPlugins: boolean;
  readonly dumpPluginInfo: string | undefined;
  /** Number of `-v` given; 0 logs at info, 1 or more at debug (still without RPC arguments). */
  readonly verbose: number;
}

export type CliParse =
  | { readonly kind: 'run'; readonly options: CliOptions }
  | { readonly kind: 'help' }
  | { readonly kind: 'version' }
  | { readonly kind: 'error'; readonly message: string };

export const USAGE = `Usage: mtls-pop-pluginserver -d <dir> [options]

Kong external plugin server for mtls-pop (kong-pdk protocol).

Options:
  -d, --plugins-directory <dir>  plugins directory (required)
  -p, --kong-prefix <prefix>     directory of the Unix socket (default: /usr/local/kong)
  --sock-name <name>             socket file name (default: js_pluginserver.sock)
  --dump-all-plugins             print every plugin's info as JSON on stdout and exit
                                 (alias: -dump, Kong's default query command suffix)
  --dump-plugin-info <name>      print one plugin's info as MessagePack on stdout and exit
  -v, --verbose                  debug logging (repeatable); never logs RPC arguments
  --version                      print the version
  -h, --help                     this help
`;

type ValueFlag = 'pluginsDirectory' | 'kongPrefix' | 'sockName' | 'dumpPluginInfo';

const VALUE_FLAGS: Readonly<Record<string, ValueFlag>> = {
  '-d': 'pluginsDirectory', '--plugins-directory': 'pluginsDirectory', '-plugins-directory': 'pluginsDirectory',
  '-p': 'kongPrefix', '--kong-prefix': 'kongPrefix', '-kong-prefix': 'kongPrefix',
  '--sock-name': 'sockName',
  '--dump-plugin-info': 'dumpPluginInfo', '-dump-plugin-info': 'dumpPluginInfo',
};

const DUMP_ALL_FLAGS = new Set(['--dump-all-plugins', '-dump-all-plugins', '--dump', '-dump']);

/** Parses `argv` (without node and script), resolving relative directories against `cwd`. */
export function parseCli(argv: readonly string[], cwd: string = process.cwd()): CliParse {
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
  const dir = values.pluginsDirectory;
  if (dir === undefined) {
    return { kind: 'error', message: "required option '-d, --plugins-directory <dir>' not specified" };
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
    },
  };
}
