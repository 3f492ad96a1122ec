import type pg from 'pg';
import { ServiceUnavailableError } from '../graphql/errors.js';

/** The request ran past REQUEST_TIMEOUT_MS: what it still wanted of the database was not started. */
export class DeadlineExceededError extends ServiceUnavailableError {
  constructor(timeoutMs: number) {
    super(`The request ran past its deadline (REQUEST_TIMEOUT_MS, ${timeoutMs} ms) and was stopped; retry shortly`);
  }
}

/**
 * The time one request may take. Costs nothing until a statement runs: the clock is read before
 * each connection and statement, and the one timer (the `signal`) is made on the first
 * statement, shared by all of the request's statements, and cleared by `end()`. Over HTTP the
 * route makes one per request (http/graphql.route.ts); the pools see it through `withinDeadline`.
 */
export class RequestDeadline {
  /** performance.now() at which the request's time is up. */
  readonly expiresAt: number;
  /** Whether the deadline stopped anything: a statement refused, a wait or a statement given up. */
  exceeded = false;
  private controller: AbortController | undefined;
  private timer: NodeJS.Timeout | undefined;
  private ended = false;

  constructor(
    readonly timeoutMs: number,
    startedAt = performance.now(),
  ) {
    this.expiresAt = startedAt + timeoutMs;
  }

  remainingMs(): number {
    return this.expiresAt - performance.now();
  }

  /** Throws SERVICE_UNAVAILABLE once the time is up. */
  check(): void {
    if (this.remainingMs() <= 0) throw this.exceed();
  }

  exceed(): DeadlineExceededError {
    this.exceeded = true;
    return new DeadlineExceededError(this.timeoutMs);
  }

  /** Aborts when the time is up (never after `end()`). */
  get signal(): AbortSignal {
    if (this.controller) return this.controller.signal;
    const controller = (this.controller = new AbortController());
    if (!this.ended) {
      this.timer = setTimeout(() => controller.abort(), Math.max(0, this.remainingMs()));
      this.timer.unref();
    }
    return controller.signal;
  }

  /** The request is answered: its timer goes. Answers whether the deadline stopped anything. */
  end(): boolean {
    this.ended = true;
    clearTimeout(this.timer);
    return this.exceeded;
  }
}

type Queryable = Pick<pg.Pool, 'query'>;

/**
 * `pool` as one request sees it: no connection is taken and no statement sent once the deadline
 * has passed; waiting for a connection ends at the deadline (the place in the pool's queue given
 * up, so the pool's waiting count drops at once); a statement still running at the deadline is
 * answered SERVICE_UNAVAILABLE then, while it keeps its connection until it ends, which
 * statement_timeout bounds (db/pool.ts). Errors and the connection's release follow pool.query.
 */
export function withinDeadline(pool: pg.Pool, deadline: RequestDeadline): Queryable {
  const query = async (config: unknown, values?: unknown): Promise<unknown> => {
    deadline.check();
    const client = await connectWithin(pool, deadline);
    const settled = new Promise<unknown>((resolve, reject) => {
      // As pool.query does: the client goes back once, destroyed after an error, and an error
      // it emits while lent out (its connection cut) ends the statement instead of the process.
      let released = false;
      const release = (err?: Error) => {
        if (released) return;
        released = true;
        client.removeListener('error', onError);
        client.release(err);
      };
      const onError = (err: Error) => {
        release(err);
        reject(err);
      };
      client.once('error', onError);
      try {
        deadline.check();
      } catch (err) {
        release();
        return reject(err as Error);
      }
      (client.query as (c: unknown, v?: unknown) => Promise<unknown>)(config, values).then(
        (result) => {
          release();
          resolve(result);
        },
        (err: unknown) => {
          release(err instanceof Error ? err : new Error(String(err)));
          reject(err as Error);
        },
      );
    });
    return raceDeadline(settled, deadline);
  };
  return { query } as unknown as Queryable;
}

/** pg-pool's queue of waiting callers (its `waitingCount`), which it offers no way to leave. */
interface PendingQueue {
  _pendingQueue?: unknown[];
}

async function connectWithin(pool: pg.Pool, deadline: RequestDeadline): Promise<pg.PoolClient> {
  const queue = (pool as unknown as PendingQueue)._pendingQueue;
  const before = queue?.length ?? 0;
  const connecting = pool.connect();
  // pg-pool queues a caller synchronously when no connection is idle and the pool is full.
  const waiting = queue && queue.length > before ? queue[queue.length - 1] : undefined;
  try {
    return await raceDeadline(connecting, deadline);
  } catch (err) {
    if (!(err instanceof DeadlineExceededError)) throw err;
    const at = waiting === undefined ? -1 : queue!.indexOf(waiting);
    if (at >= 0) queue!.splice(at, 1);
    // Out of the queue it is never handed a connection; one handed over (or opened) late goes back.
    connecting.then(
      (client) => client.release(),
      () => undefined,
    );
    throw err;
  }
}

/** `work`'s outcome, or SERVICE_UNAVAILABLE at the deadline if that comes first. */
function raceDeadline<T>(work: Promise<T>, deadline: RequestDeadline): Promise<T> {
  const signal = deadline.signal;
  if (signal.aborted) {
    work.catch(() => undefined);
    return Promise.reject(deadline.exceed());
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      work.catch(() => undefined);
      reject(deadline.exceed());
    };
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
