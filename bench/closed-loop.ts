import { Agent, request } from 'node:http';
import { createHistogram } from 'node:perf_hooks';

export interface LoadResult {
  readonly requests: number;
  readonly rps: number;
  /** Milliseconds; NaN when nothing completed. */
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly errors: number;
}

/**
 * Closed-loop load: `concurrency` workers, each starting its next operation as soon as the last
 * one finished, for `seconds`. Latencies go into an HDR histogram (exact p95, which autocannon
 * does not report). Operations still running when time is up are awaited but not counted.
 */
export async function closedLoop(concurrency: number, seconds: number, op: () => Promise<void>): Promise<LoadResult> {
  const histogram = createHistogram();
  const end = performance.now() + seconds * 1000;
  let requests = 0;
  let errors = 0;
  let firstError: unknown;
  const worker = async () => {
    while (performance.now() < end) {
      const started = performance.now();
      try {
        await op();
        const finished = performance.now();
        if (finished <= end) {
          histogram.record(Math.max(1, Math.round((finished - started) * 1000)));
          requests++;
        }
      } catch (err) {
        // Operations cut off at the end of the window (cancelled statements) are not failures.
        if (performance.now() <= end) {
          errors++;
          firstError ??= err;
        }
      }
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  if (firstError) console.error(`  ${errors} failed operations; the first: ${String(firstError)}`);
  const at = (p: number) => (requests > 0 ? histogram.percentile(p) / 1000 : NaN);
  return {
    requests,
    rps: requests / ((Math.min(performance.now(), end) - started) / 1000),
    p50: at(50),
    p95: at(95),
    p99: at(99),
    errors,
  };
}

/** A keep-alive GraphQL POST that fails on a non-200 status or an `errors` entry in the answer. */
export function graphqlPoster(url: string, headers: Record<string, string>, connections: number) {
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const target = new URL('/graphql', url);
  return (body: string) =>
    new Promise<void>((resolve, reject) => {
      const req = request(
        target,
        { method: 'POST', agent, headers: { 'content-type': 'application/json', ...headers } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            if (res.statusCode !== 200 || (JSON.parse(text) as { errors?: unknown }).errors !== undefined) {
              reject(new Error(`HTTP ${res.statusCode}: ${text.slice(0, 300)}`));
            } else resolve();
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
}
