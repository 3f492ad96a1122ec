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
}

function utcDay(date: Date): string {
  return date.toISOString().slice(0, 10);
}
