import type pg from 'pg';

/** The one delete audit_log allows (migrations/1764201600000_data_lifecycle.sql). */
export class AuditRetentionRepository {
  constructor(private readonly pool: Pick<pg.Pool, 'query'>) {}

  /**
   * Deletes up to `batchSize` rows older than `retentionDays` through purge_audit_log, which runs
   * as the role audit_retention; the table's trigger refuses any other delete.
   */
  async purgeBatch(retentionDays: number, batchSize: number): Promise<number> {
    const { rows } = await this.pool.query<{ deleted: number }>('SELECT purge_audit_log($1, $2) AS deleted', [
      retentionDays,
      batchSize,
    ]);
    return rows[0]?.deleted ?? 0;
  }
}
