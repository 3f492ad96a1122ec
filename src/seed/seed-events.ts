import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { createRollupRefresher } from '../analytics/rollup.refresher.js';
import { RollupRepository } from '../analytics/rollup.repository.js';
import { EventPartitionRepository } from '../ingest/event-partition.repository.js';
import type { Logger } from '../observability/logger.js';
import { COPY_COLUMNS, type DayEvents, EventGenerator, type SeedDay } from './event-generator.js';

export interface SeedEventsOptions {
  readonly pool: pg.Pool;
  readonly tenantId: string;
  readonly events: number;
  /** Length of the window ending at `now`, in days. Default 90. */
  readonly days?: number;
  /** End of the window (exclusive). Default: the current time. */
  readonly now?: Date;
  /** PRNG seed: the same seed, `now` and counts give the same rows. Default 1. */
  readonly seed?: number;
  /**
   * Days loaded at once, each by its own COPY on its own connection. Default 2: on two cores,
   * two backends stay busy while Node generates the next day between their chunks.
   */
  readonly concurrency?: number;
  /**
   * How a day without a partition is loaded. `attach` (default): COPY into a new bare table,
   * build its indexes in one sort each, then attach it as the day's partition. `direct`: create
   * the partitions first (EventPartitionRepository.ensurePartitions) and COPY into them, so
   * every row updates four btrees as it goes in: about a third of the rate on the same machine.
   * Days that already have a partition are always loaded directly.
   */
  readonly strategy?: 'attach' | 'direct';
  /** COPY format. Default binary (Postgres parses text at about half the rate). */
  readonly format?: 'binary' | 'text';
  /** Size of each COPY data message. Default 2 MiB. */
  readonly chunkBytes?: number;
  /** Called as rows go out, after each chunk. */
  readonly onProgress?: (done: number, total: number) => void;
}

export interface SeedEventsResult {
  readonly rows: number;
  /** The COPY phase: partitions, COPY, index builds and attaching, to the last COMMIT. */
  readonly seconds: number;
  readonly rowsPerSecond: number;
  /** The window loaded, [from, to). */
  readonly from: Date;
  readonly to: Date;
  /** Days loaded into new partitions built by this load (`attach`), and into existing ones. */
  readonly attachedDays: number;
  readonly directDays: number;
}

/**
 * Loads generated events (src/seed/event-generator.ts) into the events table with COPY, one UTC
 * day per COPY, straight into that day's partition table: routing rows through the parent costs
 * a partition lookup each, and the partition checks its own bounds anyway. Days go out in
 * parallel on `concurrency` connections; each day is one transaction, so a failure leaves whole
 * days loaded and nothing of the rest (a new partition included).
 *
 * The rows bypass the event writer, so the rollups know nothing of them: call
 * `refreshSeededRollups` afterwards (timed apart, it is the other half of a seed's cost).
 */
export async function seedEvents(options: SeedEventsOptions): Promise<SeedEventsResult> {
  const { pool, onProgress, strategy = 'attach', format = 'binary', chunkBytes = 2 * 1024 * 1024 } = options;
  const generator = new EventGenerator({
    tenantId: options.tenantId,
    events: options.events,
    days: options.days ?? 90,
    now: options.now ?? new Date(),
    seed: options.seed ?? 1,
  });
  const total = generator.events;
  const days = generator.days.filter((d) => d.events > 0);
  const started = performance.now();

  if (strategy === 'direct' && days.length > 0) {
    await new EventPartitionRepository(pool).ensurePartitions(
      new Date(days[0]!.start),
      new Date(days[days.length - 1]!.start),
    );
  }
  const existing = await existingPartitions(pool, days);
  const plan = strategy === 'attach' ? await attachPlan(pool) : { indexes: [], defaultPartition: null };
  // Biggest days first, so the last days in flight are short and the connections finish together.
  const queue = [...days].sort((a, b) => b.events - a.events || a.index - b.index);

  let done = 0;
  let attachedDays = 0;
  let failure: unknown;
  const worker = async (): Promise<void> => {
    let client: pg.PoolClient | undefined;
    let broken: Error | undefined;
    try {
      client = await pool.connect();
      // Stop taking days once any day failed; the days already in flight finish or fail alone.
      for (let day = queue.shift(); day && failure === undefined; day = queue.shift()) {
        const events = generator.generateDay(day.index);
        const load: DayLoad = {
          client,
          events,
          format,
          chunkBytes,
          onRows: (rows) => {
            done += rows;
            onProgress?.(done, total);
          },
        };
        if (existing.has(day.partition)) await copyIntoPartition(load);
        else if (await copyIntoNewPartition(load, plan)) attachedDays++;
        else {
          // Another session made the partition since we looked (a second seed, say): load into it.
          await existingPartitions(client, [day]);
          await copyIntoPartition(load);
        }
      }
    } catch (err) {
      failure ??= err;
      broken = err as Error;
    } finally {
      // A connection that failed mid-COPY may still be in the COPY protocol: discard it.
      client?.release(broken);
    }
  };
  const concurrency = Math.max(1, Math.min(options.concurrency ?? 2, days.length || 1));
  await Promise.all(Array.from({ length: concurrency }, worker));
  if (failure !== undefined) throw failure;

  const seconds = (performance.now() - started) / 1000;
  return {
    rows: done,
    seconds,
    rowsPerSecond: seconds > 0 ? done / seconds : 0,
    from: generator.from,
    to: generator.to,
    attachedDays,
    directDays: days.length - attachedDays,
  };
}

interface DayLoad {
  readonly client: pg.PoolClient;
  readonly events: DayEvents;
  readonly format: 'binary' | 'text';
  readonly chunkBytes: number;
  readonly onRows: (rows: number) => void;
}

/** The days' partition tables that exist; a same-named table that is not one is an error. */
async function existingPartitions(db: pg.Pool | pg.PoolClient, days: readonly SeedDay[]): Promise<Set<string>> {
  const { rows } = await db.query<{ name: string; partition: boolean }>(
    `SELECT c.relname AS name,
            EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid AND i.inhparent = 'events'::regclass) AS partition
     FROM pg_class c
     WHERE c.relname = ANY ($1) AND c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = 'events'::regclass)`,
    [days.map((d) => d.partition)],
  );
  const strangers = rows.filter((r) => !r.partition).map((r) => r.name);
  if (strangers.length > 0) throw new Error(`tables that are not partitions of events: ${strangers.join(', ')}`);
  return new Set(rows.map((r) => r.name));
}

/** How a new partition gets the indexes and default-partition rows that ATTACH expects. */
interface AttachPlan {
  /** Per index of `events`, the statement that builds it on the named table. */
  readonly indexes: readonly ((table: string) => string)[];
  /** The default partition of `events`, if there is one. */
  readonly defaultPartition: string | null;
}

/**
 * Read from the catalog, so an index a later migration adds is built too; should one ever not
 * match, ATTACH builds it itself (slower, still right). Indexes behind a constraint (the primary
 * key) are added as that constraint: ATTACH only adopts a constraint's index for a constraint.
 */
async function attachPlan(pool: pg.Pool): Promise<AttachPlan> {
  const { rows } = await pool.query<{ index: string; con: string | null }>(
    `SELECT pg_get_indexdef(i.indexrelid) AS index, pg_get_constraintdef(c.oid) AS con
     FROM pg_index i LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid
     WHERE i.indrelid = 'events'::regclass
     ORDER BY c.contype = 'p' DESC NULLS LAST, i.indexrelid`,
  );
  const indexes = rows.map(({ index, con }) => {
    if (con) return (table: string) => `ALTER TABLE ${table} ADD ${con}`;
    // "CREATE INDEX name ON ONLY public.events USING ...", left unnamed: Postgres then names it
    // after the table, as it names those it creates when ensure_event_partitions attaches one.
    const match = /^CREATE (UNIQUE )?INDEX \S+ ON ONLY \S+ (USING .*)$/s.exec(index);
    if (!match) throw new Error(`unexpected index definition on events: ${index}`);
    return (table: string) => `CREATE ${match[1] ?? ''}INDEX ON ${table} ${match[2]}`;
  });
  const { rows: defaults } = await pool.query<{ name: string }>(
    `SELECT c.oid::regclass::text AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'events'::regclass AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'`,
  );
  return { indexes, defaultPartition: defaults[0]?.name ?? null };
}

async function copyRows(load: DayLoad, table: string, freeze: boolean): Promise<void> {
  const { client, events, format, chunkBytes, onRows } = load;
  const copy = client.query(
    copyFrom(
      `COPY ${pg.escapeIdentifier(table)} (${COPY_COLUMNS.join(', ')}) FROM STDIN (FORMAT ${format}, FREEZE ${freeze})`,
    ),
  );
  // pipeline writes each chunk and waits for 'drain' when the socket is full, so at most a chunk
  // or two per day is ahead of Postgres; a failure on either side destroys the other.
  await pipeline(function* () {
    for (const chunk of events.copyChunks({ format, chunkBytes })) {
      yield chunk.data;
      onRows(chunk.rows);
    }
  }, copy);
  if (copy.rowCount !== events.length) {
    throw new Error(`COPY into ${table} stored ${copy.rowCount} of ${events.length} rows`);
  }
}

async function inTransaction(client: pg.PoolClient, work: () => Promise<void>): Promise<void> {
  await client.query('BEGIN');
  try {
    // Durability of a seed is not worth a WAL flush wait: a crash means seeding again.
    await client.query('SET LOCAL synchronous_commit = off');
    await work();
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** Into an existing partition: its btrees take the rows one at a time (sorted input helps the key's). */
async function copyIntoPartition(load: DayLoad): Promise<void> {
  await inTransaction(load.client, () => copyRows(load, load.events.day.partition, false));
}

/**
 * A day without a partition, made the way ensure_event_partitions (migrations/1763769600000_foundation.sql)
 * makes one, except for when the indexes are built: CREATE TABLE ... LIKE events, COPY, build
 * each index in one sort (a third of the CPU of inserting into four btrees row by row), then,
 * under that function's advisory lock, move the day's rows out of the default partition and
 * ATTACH. ATTACH adopts the matching indexes, and the CHECK constraint proves the rows are in
 * bounds without a scan, so its locks are held for a moment only. One transaction: nobody sees
 * the table before COMMIT, and a failure leaves nothing behind. Returns false, having loaded
 * nothing, when a table of the partition's name appeared since `existingPartitions` looked.
 */
async function copyIntoNewPartition(load: DayLoad, plan: AttachPlan): Promise<boolean> {
  const { client, events } = load;
  const { partition, start } = events.day;
  const table = pg.escapeIdentifier(partition);
  const bounds = pg.escapeIdentifier(`${partition}_seed_bounds`);
  const lo = `${pg.escapeLiteral(new Date(start).toISOString())}::timestamptz`;
  const hi = `${pg.escapeLiteral(new Date(start + 86_400_000).toISOString())}::timestamptz`;
  let taken = false;
  await inTransaction(client, async () => {
    // Room to sort a large day in memory (the default 64 MB spills at about 500k rows), and no
    // parallel workers: the other days in flight already keep every core busy.
    await client.query("SET LOCAL maintenance_work_mem = '256MB'");
    await client.query('SET LOCAL max_parallel_maintenance_workers = 0');
    // Savepoint: a table of that name committed meanwhile fails this statement alone (42P07 if
    // it came before, 23505 on the catalog's unique index if it raced this one).
    await client.query('SAVEPOINT create_partition');
    try {
      await client.query(
        `CREATE TABLE ${table} (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
           CONSTRAINT ${bounds} CHECK (occurred_at >= ${lo} AND occurred_at < ${hi}))`,
      );
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code !== '42P07' && code !== '23505') throw err;
      await client.query('ROLLBACK TO SAVEPOINT create_partition');
      taken = true;
      return;
    }
    // FREEZE: the table is new in this transaction, so its rows go in frozen and all-visible
    // (no later VACUUM rewrites every page, and index-only scans work at once).
    await copyRows(load, partition, true);
    // The primary key first: its build scans the heap in load order, which is key order, so
    // its sort finds the input presorted.
    for (const build of plan.indexes) await client.query(build(table));
    await client.query("SELECT pg_advisory_xact_lock(hashtext('ensure_event_partitions'))");
    if (plan.defaultPartition) {
      await client.query(`LOCK TABLE ${plan.defaultPartition} IN EXCLUSIVE MODE`);
      await client.query(
        `WITH moved AS (DELETE FROM ${plan.defaultPartition} WHERE occurred_at >= ${lo} AND occurred_at < ${hi} RETURNING *)
         INSERT INTO ${table} SELECT * FROM moved`,
      );
    }
    await client.query(`ALTER TABLE events ATTACH PARTITION ${table} FOR VALUES FROM (${lo}) TO (${hi})`);
    // Partitions made by ensure_event_partitions have no such constraint; neither does this one.
    await client.query(`ALTER TABLE ${table} DROP CONSTRAINT ${bounds}`);
  });
  return !taken;
}

/**
 * Folds seeded rows into the rollups: marks every hour of [from, to) dirty for `tenantId`, then
 * runs refresh rounds until nothing is dirty (src/analytics/rollup.refresher.ts does the work).
 * While a running gateway's refresher holds the refresh lock, this retries until it gets it.
 */
export async function refreshSeededRollups(
  pool: pg.Pool,
  logger: Logger,
  tenantId: string,
  from: Date,
  to: Date,
): Promise<{ hours: number; seconds: number }> {
  const started = performance.now();
  const hours = await new RollupRepository(pool).markDirty(tenantId, from, to);
  await createRollupRefresher({ pool, logger }).catchUp();
  return { hours, seconds: (performance.now() - started) / 1000 };
}
