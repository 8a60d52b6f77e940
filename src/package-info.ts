/**
 * The package's own version, read once from package.json at the package root (every compiled
 * entry point sits two levels below it: dist/src, dist/bin, dist/plugins). "0.0.0" when the file
 * is missing, since Kong requires an x.y.z VERSION.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

let cached: string | undefined;

export function packageVersion(): string {
  if (cached !== undefined) return cached;
  cached = '0.0.0';
  try {
    const pkg = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
    if (pkg.name === 'kong-plugin-mtls-pop' && typeof pkg.version === 'string') cached = pkg.version;
  } catch {
    // not installed as a package: keep the placeholder
  }
  return cached;
}
