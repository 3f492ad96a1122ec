/**
 * The WHERE clause and parameters of one newest-first page of a tenant's rows: optional filters,
 * each numbered as it is added, then the keyset condition that starts the page after the cursor
 * ((occurred_at, id) below the last row seen), then the limit. The ORDER BY it needs is
 * `occurred_at DESC, id DESC`. SQL of each table stays with its repository; only the assembly is here.
 */
export class NewestFirstPage {
  readonly params: unknown[];
  private readonly conditions: string[] = ['tenant_id = $1'];

  constructor(tenantId: string) {
    this.params = [tenantId];
  }

  /** Adds `sql` with its one `?` bound to `value`. */
  where(sql: string, value: unknown): this {
    this.params.push(value);
    this.conditions.push(sql.replace('?', `$${this.params.length}`));
    return this;
  }

  /** Rows older than the cursor's (time in microseconds since the epoch, then id of the given SQL type). */
  before(cursor: { readonly timeUs: string | number | bigint; readonly id: string }, idType: 'uuid' | 'bigint'): this {
    this.params.push(cursor.timeUs, cursor.id);
    const n = this.params.length;
    this.conditions.push(
      `(occurred_at, id) < (to_timestamp(0) + $${n - 1}::bigint * interval '1 microsecond', $${n}::${idType})`,
    );
    return this;
  }

  /**
   * Rows in [from, to): literal bounds on the partition column, which a generic plan prunes to
   * when it starts ("Subplans Removed"). `from` null leaves the window open below.
   */
  within(from: Date | null, to: Date): this {
    if (from) this.where('occurred_at >= ?', from);
    return this.where('occurred_at < ?', to);
  }

  /** The conditions joined, and the placeholder of `limit`, which is bound last. */
  finish(limit: number): { where: string; limit: string } {
    this.params.push(limit);
    return { where: this.conditions.join(' AND '), limit: `$${this.params.length}` };
  }
}

const DAY_MS = 86_400_000;

/**
 * How far each window of a newest-first read reaches below the current UTC day, in days: today,
 * yesterday, the last 30 days; after the last, the window is open below. A page the first two
 * windows fill reads at most two daily partitions; a sparse one costs at most
 * `WINDOW_DAYS.length + 1` statements.
 */
export const WINDOW_DAYS = [1, 2, 30] as const;

/**
 * The windows, newest first, that a page ending below `top` (exclusive, epoch ms) walks: each
 * [from, to) starts where the previous one ended, so reading them in order and stopping once the
 * page is full gives exactly the rows and order of one unbounded ORDER BY occurred_at DESC, id
 * DESC walk. Days count back from the UTC day of `top`, or of `now` when `top` is later (a top
 * just past midnight would otherwise spend the first window on an empty day). `floor` (the
 * caller's own lower bound, if any) ends the walk: the window that reaches it is left open below,
 * the caller's condition bounding it.
 */
export function* newestFirstWindows(
  top: number,
  floor: Date | null,
  now = Date.now(),
): Generator<{ from: Date | null; to: Date }> {
  const day = Math.floor((Math.min(top, now) - 1) / DAY_MS) * DAY_MS;
  let to = new Date(top);
  for (const days of WINDOW_DAYS) {
    const from = new Date(day - (days - 1) * DAY_MS);
    if (floor && floor >= from) break;
    yield { from, to };
    to = from;
  }
  yield { from: null, to };
}

/** The exclusive epoch-ms bound above a cursor's time (microseconds, possibly before 1970). */
export function msAbove(timeUs: string | number | bigint): number {
  const us = BigInt(timeUs);
  const ms = us / 1000n - (us % 1000n < 0n ? 1n : 0n);
  return Number(ms + 1n);
}
