/**
 * A preload (`node --require dist/test/helpers/clock-offset.js ...`) that lets a test move the
 * wall clock of a REAL child process, such as the plugin server, without touching its code:
 * `Date.now()` returns the real time plus an offset in milliseconds read from the file named by
 * `MTLS_POP_TEST_CLOCK_FILE`. The file is read at start and again on SIGUSR2; after each read the
 * offset is written back to `<file>.ack`, so the test knows when the new time is in force.
 *
 * Timers (`setTimeout`, `performance.now()`) keep real time: deadlines and backoffs still run at
 * real speed, only "what time is it" moves. Without the variable the module does nothing.
 *
 *   const clock = new ClockOffset();              // in the test
 *   spawn(node, ['--require', CLOCK_OFFSET_PRELOAD, server], { env: { ...clock.env } });
 *   await clock.set(pid, 4200_000);               // the child now lives 70 minutes ahead
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CLOCK_FILE_VARIABLE = 'MTLS_POP_TEST_CLOCK_FILE';

/** Path of the compiled preload (this file). */
export const CLOCK_OFFSET_PRELOAD = __filename;

function install(file: string): void {
  const realNow = Date.now.bind(Date);
  let offset = 0;
  const load = (): void => {
    try {
      const value = Number(readFileSync(file, 'utf8').trim());
      offset = Number.isFinite(value) ? value : 0;
    } catch {
      offset = 0;
    }
    try {
      writeFileSync(`${file}.ack`, String(offset));
    } catch {
      // the test will time out waiting for the acknowledgement
    }
  };
  load();
  Date.now = () => realNow() + offset;
  process.on('SIGUSR2', load);
}

const configured = process.env[CLOCK_FILE_VARIABLE];
if (typeof configured === 'string' && configured !== '') install(configured);

/** The test's side: owns the offset file and moves a child's clock. */
export class ClockOffset {
  readonly dir = mkdtempSync(join(tmpdir(), 'clock-offset-'));
  readonly file = join(this.dir, 'offset');

  constructor() {
    writeFileSync(this.file, '0');
  }

  /** Environment variables that make the preload follow this file. */
  get env(): Record<string, string> {
    return { [CLOCK_FILE_VARIABLE]: this.file };
  }

  /** Sets the child's offset and waits until the child acknowledges it. */
  async set(pid: number, offsetMs: number, timeoutMs = 5000): Promise<void> {
    const ack = `${this.file}.ack`;
    rmSync(ack, { force: true });
    writeFileSync(this.file, String(offsetMs));
    process.kill(pid, 'SIGUSR2');
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (existsSync(ack) && readFileSync(ack, 'utf8') === String(offsetMs)) return;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    throw new Error(`process ${pid} did not acknowledge the clock offset ${offsetMs} ms`);
  }

  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
