import type pg from 'pg';

export class EventPartitionRepository {
  constructor(private readonly pool: pg.Pool) {}

  /** Creates the missing daily partitions of `events` for UTC days [from, to]; returns how many. */
  async ensurePartitions(from: Date, to: Date): Promise<number> {
    const { rows } = await this.pool.query<{ created: number }>(
      'SELECT ensure_event_partitions($1::date, $2::date) AS created',
      [utcDay(from), utcDay(to)],
    );
    return rows[0]?.created ?? 0;
  }

  /**
   * Retention: drops the day partitions that end on or before `cutoff` (a UTC midnight) and
   * deletes older rows from the default partition; returns the dropped partitions' names. Dropping
   * a partition is a catalog change, not a DELETE: no dead rows, no vacuum, instant at any size.
   */
  async dropBefore(cutoff: Date): Promise<string[]> {
    const { rows } = await this.pool.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       WHERE i.inhparent = 'events'::regclass AND c.relname ~ '^events_[0-9]{8}$' ORDER BY 1`,
    );
    const cutoffDay = utcDay(cutoff).replaceAll('-', '');
    const doomed = rows.map((r) => r.name).filter((name) => name.slice('events_'.length) < cutoffDay);
    for (const name of doomed) await this.pool.query(`DROP TABLE IF EXISTS ${name}`);
    await this.pool.query('DELETE FROM events_default WHERE occurred_at < $1', [cutoff]);
    return doomed;
  }
}

function utcDay(date: Date): string {
  return date.toISOString().slice(0, 10);
}
