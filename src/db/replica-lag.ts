import type pg from 'pg';

type Queryable = Pick<pg.Pool, 'query'>;

export interface ReplicaLag {
  /**
   * How far the replica's data is behind the primary, in milliseconds: 0 when it has replayed
   * all the WAL the primary had written when asked, else the time since it replayed its last
   * transaction.
   */
  lagMs(): Promise<number>;
}

/**
 * Replay lag of a streaming replica, for `freshness`. Time alone misleads: on an idle primary
 * pg_last_xact_replay_timestamp() stays at the last commit and `now() - it` grows without the
 * replica missing anything. So positions decide whether it is behind: the primary's
 * pg_current_wal_lsn(), read first, against the replica's pg_last_wal_replay_lsn(), read after;
 * a replica at or past it had every commit the primary had made, and lags 0. Only a replica
 * behind is given a time, the age of its last replayed commit: an upper bound of how old its
 * data is (what it misses was committed after that). WAL with no commit in it (a checkpoint on
 * an idle primary) can make a replica briefly "behind" for the milliseconds it takes to stream;
 * an answer in that instant overstates the lag. Not a replica (`pg_is_in_recovery()` false):
 * it is the primary, 0.
 */
export function createReplicaLag(deps: { readonly primary: Queryable; readonly replica: Queryable }): ReplicaLag {
  return {
    async lagMs() {
      const primary = await deps.primary.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
      const { rows } = await deps.replica.query<{ behind: boolean | null; age_ms: number | null }>(
        `SELECT pg_is_in_recovery() AND pg_last_wal_replay_lsn() < $1::pg_lsn AS behind,
                (extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000)::float8 AS age_ms`,
        [primary.rows[0]!.lsn],
      );
      const row = rows[0]!;
      return row.behind ? Math.max(0, Math.round(row.age_ms ?? 0)) : 0;
    },
  };
}
