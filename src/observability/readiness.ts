import type pg from 'pg';
import type { Redis } from '../redis/create-redis.js';
import type { Metrics } from './metrics.js';

export interface CheckResult {
  readonly ok: boolean;
  readonly response_time_ms: number;
  readonly error?: string;
  /** What the check found besides up/down (stream lag, degraded mode). */
  readonly details?: Record<string, unknown>;
}

export interface ReadinessReport {
  /**
   * ok: every check passed; degraded: some failed, but none this replica cannot serve without
   * (Redis down: ingestion writes to Postgres, queries run without the cache); unavailable: an
   * essential one failed (Postgres, for a replica that serves the API).
   */
  readonly status: 'ok' | 'degraded' | 'unavailable';
  /** Names of the dependencies that failed, so a 503 (or a degraded 200) says what to look at. */
  readonly failing: string[];
  readonly checks: Record<string, CheckResult>;
}

/** A named dependency probe; resolves (optionally with details) when healthy, throws when not. */
export type Check = () => Promise<void | Record<string, unknown>>;

/**
 * `/ready`: every check runs in parallel with a deadline, so one hung dependency answers
 * "not ready" in READY_CHECK_TIMEOUT_MS instead of hanging the orchestrator's probe. Workers add
 * their own checks (stream lag, for example) through `register`.
 */
export function createReadiness(deps: {
  pool: pg.Pool;
  redis: Redis;
  metrics: Metrics;
  timeoutMs: number;
  /**
   * The checks without which the replica cannot serve at all: their failure answers 503, any
   * other failure 200 "degraded". Default `['postgres']` (an API replica degrades without Redis);
   * a worker-only replica, which only consumes the Redis streams, adds `redis`.
   */
  essential?: readonly string[];
}) {
  const essential = new Set(deps.essential ?? ['postgres']);
  const checks = new Map<string, Check>([
    ['postgres', async () => void (await deps.pool.query('SELECT 1'))],
    [
      'redis',
      async () => {
        // A disconnected client would queue or retry; report the state at once instead.
        if (deps.redis.status !== 'ready') throw new Error(`connection is ${deps.redis.status}`);
        await deps.redis.ping();
      },
    ],
  ]);

  async function run(name: string, check: Check): Promise<CheckResult> {
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${deps.timeoutMs} ms`)), deps.timeoutMs);
    });
    try {
      const details = await Promise.race([check(), deadline]);
      return { ok: true, response_time_ms: elapsed(started), ...(details ? { details } : {}) };
    } catch (err) {
      return { ok: false, response_time_ms: elapsed(started), error: err instanceof Error ? err.message : String(err) };
    } finally {
      clearTimeout(timer);
      const seconds = (performance.now() - started) / 1000;
      deps.metrics.dependencyCheckDuration.observe({ dependency: name }, seconds);
    }
  }

  return {
    register(name: string, check: Check): void {
      checks.set(name, check);
    },
    async report(): Promise<ReadinessReport> {
      const entries = await Promise.all(
        [...checks].map(async ([name, check]) => [name, await run(name, check)] as const),
      );
      for (const [name, result] of entries) deps.metrics.dependencyUp.set({ dependency: name }, result.ok ? 1 : 0);
      const failing = entries.filter(([, r]) => !r.ok).map(([name]) => name);
      const status = failing.some((name) => essential.has(name)) ? 'unavailable' : failing.length ? 'degraded' : 'ok';
      return { status, failing, checks: Object.fromEntries(entries) };
    },
  };
}

export type Readiness = ReturnType<typeof createReadiness>;

/** `/ready`'s status code: 503 only when the replica cannot serve, 200 when ok or degraded. */
export function readinessHttpStatus(report: ReadinessReport): 200 | 503 {
  return report.status === 'unavailable' ? 503 : 200;
}

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 100) / 100;
}
