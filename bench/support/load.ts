import autocannon from 'autocannon';
import { waitFor } from '../../test/helpers/test-env.js';

export interface LoadSettings {
  readonly connections: number;
  readonly duration: number;
  /** Seconds of the same load first, not counted. */
  readonly warmup: number;
}

export interface LoadResult {
  readonly name: string;
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly errors: number;
  readonly non2xx: number;
}

/**
 * autocannon against one GraphQL POST, after the server answers it with 200 and a warm-up: the
 * load every throughput figure of bench/ is taken with.
 */
export async function measureGraphql(
  name: string,
  url: string,
  body: string,
  headers: Record<string, string>,
  settings: LoadSettings,
): Promise<LoadResult> {
  const allHeaders = { 'content-type': 'application/json', ...headers };
  let first = '';
  await waitFor(
    async () => {
      const response = await fetch(url, { method: 'POST', headers: allHeaders, body }).catch(() => null);
      if (!response) return false;
      first = await response.text();
      return response.status === 200 && !first.includes('"errors"');
    },
    60_000,
    200,
  ).catch(() => {
    throw new Error(`${name}: ${url} never answered ${body} with data: ${first.slice(0, 300)}`);
  });
  const run = (duration: number) =>
    autocannon({ url, method: 'POST', headers: allHeaders, body, connections: settings.connections, duration });
  if (settings.warmup > 0) await run(settings.warmup);
  const result = await run(settings.duration);
  return {
    name,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
  };
}

export function printResults(rows: readonly LoadResult[]): void {
  const pad = (s: string, n: number) => s.padEnd(n);
  console.log(pad('server and query', 44), pad('req/s', 9), pad('p50 ms', 8), pad('p99 ms', 8), 'errors/non-2xx');
  for (const r of rows) {
    console.log(
      pad(r.name, 44),
      pad(r.rps.toFixed(0), 9),
      pad(String(r.p50), 8),
      pad(String(r.p99), 8),
      `${r.errors}/${r.non2xx}`,
    );
  }
}
