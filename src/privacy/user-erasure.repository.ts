import pg from 'pg';

/** What one batch deleted: how many events, and the time range they covered (for the rollups). */
export interface ErasedBatch {
  readonly deleted: number;
  readonly first: Date | null;
  readonly last: Date | null;
}

/**
 * SQL of a user erasure: the tombstone in erased_users (migrations/1764201600000_data_lifecycle.sql)
 * and the batched deletion of the user's events, partition by partition.
 */
export class UserErasureRepository {
  constructor(private readonly pool: pg.Pool) {}

  /**
   * One erasure per (tenant, user) at a time, across replicas: a session advisory lock on a
   * connection of its own, held until `release` (or until the connection dies). Null when another
   * erasure of the same user holds it: two interleaved erasures would each set the tombstone's
   * final time while the other still deletes.
   */
  async lockUser(tenantId: string, userId: string): Promise<{ release(): Promise<void> } | null> {
    const client = await this.pool.connect();
    try {
      const { rows } = await client.query<{ locked: boolean }>(
        "SELECT pg_try_advisory_lock(hashtextextended('erase-user:' || $1 || ':' || $2, 0)) AS locked",
        [tenantId, userId],
      );
      if (!rows[0]?.locked) {
        client.release();
        return null;
      }
    } catch (err) {
      client.release(err as Error);
      throw err;
    }
    return {
      release: async () => {
        // Discarding the connection also drops the lock, even if the unlock fails.
        await client
          .query("SELECT pg_advisory_unlock(hashtextextended('erase-user:' || $1 || ':' || $2, 0))", [tenantId, userId])
          .then(
            () => client.release(),
            (err: Error) => client.release(err),
          );
      },
    };
  }

  /**
   * Sets the tombstone to 'infinity' (refuse every event of the user) and returns once every
   * event write that could have missed it has committed. The event writer reads erased_users in
   * its insert statement (src/ingest/event.repository.ts) and so holds ACCESS SHARE on it until
   * its COMMIT; taking ACCESS EXCLUSIVE here waits for those writes (one batch each, milliseconds)
   * and holds writers back only for the instant of this upsert. Every later write statement takes
   * its snapshot after this COMMIT and sees the tombstone, so any event of the user not refused is
   * already committed and visible to the deletion that follows.
   */
  async beginTombstone(tenantId: string, userId: string, lockTimeoutMs: number): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.floor(lockTimeoutMs))}`);
      await client.query('LOCK TABLE erased_users IN ACCESS EXCLUSIVE MODE');
      await client.query(
        `INSERT INTO erased_users (tenant_id, user_id, erased_at) VALUES ($1, $2, 'infinity')
         ON CONFLICT (tenant_id, user_id) DO UPDATE SET erased_at = 'infinity'`,
        [tenantId, userId],
      );
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  /** Makes the tombstone final: events received before `erasedAt` stay refused, later ones are stored. */
  async completeTombstone(tenantId: string, userId: string, erasedAt: Date): Promise<void> {
    await this.pool.query('UPDATE erased_users SET erased_at = $3 WHERE tenant_id = $1 AND user_id = $2', [
      tenantId,
      userId,
      erasedAt,
    ]);
  }

  /** Every partition of `events` (the day partitions and the default one). */
  async partitions(): Promise<string[]> {
    const { rows } = await this.pool.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       WHERE i.inhparent = 'events'::regclass ORDER BY c.relname`,
    );
    return rows.map((r) => r.name);
  }

  /**
   * Deletes up to `limit` of the user's events in one partition, in its own short transaction
   * (autocommit): the rows are found by events_tenant_user_time_id_idx and deleted by ctid (TID
   * Scan), so only those rows are locked and inserts into the partition never wait. The same
   * statement forgets their messageIds and marks their hours dirty, so a crash between batches
   * leaves rollups the refresher will correct.
   */
  async deleteBatch(partition: string, tenantId: string, userId: string, limit: number): Promise<ErasedBatch> {
    const table = pg.escapeIdentifier(partition);
    const { rows } = await this.pool.query<{ deleted: number; first: Date | null; last: Date | null }>(
      `WITH gone AS (
         DELETE FROM ${table} WHERE ctid = ANY (ARRAY(
           SELECT ctid FROM ${table} WHERE tenant_id = $1 AND user_id = $2 LIMIT $3))
         RETURNING occurred_at, message_id
       ),
       ids AS (
         DELETE FROM event_message_ids m
         WHERE m.tenant_id = $1 AND m.message_id IN (SELECT message_id FROM gone WHERE message_id IS NOT NULL)
       ),
       marked AS (
         INSERT INTO rollup_dirty (tenant_id, hour)
         SELECT DISTINCT $1::uuid, date_trunc('hour', occurred_at, 'UTC') FROM gone ORDER BY 1, 2
         ON CONFLICT (tenant_id, hour) DO UPDATE SET version = rollup_dirty.version + 1
       )
       SELECT count(*)::int AS deleted, min(occurred_at) AS first, max(occurred_at) AS last FROM gone`,
      [tenantId, userId, limit],
    );
    const row = rows[0]!;
    return { deleted: row.deleted, first: row.first, last: row.last };
  }
}
