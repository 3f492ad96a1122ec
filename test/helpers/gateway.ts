import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createApp, type App } from '../../src/app/gateway.js';
import { loadConfig } from '../../src/config/config.js';
import { createLogger } from '../../src/observability/logger.js';

export interface RunningGateway {
  readonly url: string;
  readonly app: App;
  stop(): Promise<void>;
}

/** A gateway in this process, built exactly as main.ts builds one, on an ephemeral port. */
export async function startGateway(env: Record<string, string | undefined>): Promise<RunningGateway> {
  const config = loadConfig(env);
  const app = await createApp(config, createLogger(config));
  const address = await app.listen();
  return { url: `http://127.0.0.1:${address.port}`, app, stop: () => app.stop() };
}

export const MAIN_JS = fileURLToPath(new URL('../../src/main.js', import.meta.url));
export const CLI_JS = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export interface SpawnedGateway {
  readonly child: ChildProcess;
  readonly url: string;
  /** Everything the process has written so far (JSON log lines). */
  output(): string;
  /** Resolves with the exit code and signal. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * `node dist/src/main.js` as a real process (only the variables given, plus PATH), for what
 * needs one: signals, exit codes, start-up failures. Resolves once it logs that it listens.
 */
export async function spawnGateway(
  env: Record<string, string | undefined>,
  timeoutMs = 20_000,
): Promise<SpawnedGateway> {
  const child = spawn(process.execPath, [MAIN_JS], {
    env: { PATH: process.env.PATH, ...env, LOG_LEVEL: env.LOG_LEVEL === 'silent' ? 'info' : (env.LOG_LEVEL ?? 'info') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`gateway did not start in ${timeoutMs} ms:\n${output}`)),
      timeoutMs,
    );
    const onData = () => {
      const line = output.split('\n').find((l) => l.includes('"gateway listening"'));
      if (line) {
        clearTimeout(timer);
        resolve((JSON.parse(line) as { port: number }).port);
      }
    };
    child.stdout!.on('data', onData);
    void exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited with ${code} before listening:\n${output}`));
    });
  });
  return { child, url: `http://127.0.0.1:${port}`, output: () => output, exited };
}

/** Two gateway processes sharing one database and Redis prefix (the first one migrates). */
export async function spawnGatewayPair(env: Record<string, string | undefined>): Promise<SpawnedGateway[]> {
  const first = await spawnGateway(env);
  return [first, await spawnGateway({ ...env, MIGRATE_ON_START: 'false' })];
}

/** SIGTERM, then waits for each to exit. */
export async function stopGateways(gateways: readonly SpawnedGateway[]): Promise<void> {
  for (const g of gateways) {
    g.child.kill('SIGTERM');
    await g.exited;
  }
}

/** One sample of a gateway's /metrics, e.g. `late_events_total{window="ONE_HOUR"}`; 0 when absent. */
export async function scrapeMetric(url: string, sample: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line ? Number(line.split(' ')[1]) : 0;
}
