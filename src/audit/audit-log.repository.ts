import type pg from 'pg';
import type { AuditEntry } from './audit-entry.js';
import { NewestFirstPage } from '../db/newest-first-page.js';

/** An audit row ready to insert: its details already masked and serialized. */
export interface AuditRowInput extends Omit<AuditEntry, 'details'> {
  readonly detailsJson: string;
}

export interface AuditRow {
  readonly id: string;
  readonly occurredAt: Date;
  /** Microseconds since the epoch, text: the cursor's sort key at the column's full precision. */
  readonly timeUs: string;
  readonly action: string;
  readonly operationName: string | null;
  readonly result: string;
  readonly keyId: string | null;
  readonly keyPrefix: string | null;
  readonly ip: string | null;
  readonly userAgent: string | null;
  readonly traceId: string | null;
  readonly requestId: string | null;
  readonly details: Record<string, unknown>;
}

export interface AuditQuery {
  readonly action?: string | null;
  readonly result?: string | null;
  readonly from?: Date | null;
  readonly to?: Date | null;
  readonly keyId?: string | null;
  /** Keyset position: rows strictly older than (timeUs, id). */
  readonly before?: { readonly timeUs: string; readonly id: string } | null;
  readonly limit: number;
}

/** audit_log: appended in batches, read a tenant's page at a time. Rows are never updated (triggers refuse it). */
export class AuditLogRepository {
  constructor(private readonly pool: pg.Pool) {}

  /** One statement for the whole batch: one round trip, and all rows or none. */
  async insert(rows: readonly AuditRowInput[]): Promise<void> {
    if (rows.length === 0) return;
    await this.pool.query(
      `INSERT INTO audit_log (occurred_at, tenant_id, api_key_id, key_prefix, action, operation_name, result,
                              ip, user_agent, trace_id, request_id, details)
       SELECT * FROM unnest($1::timestamptz[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                            $7::text[], $8::inet[], $9::text[], $10::text[], $11::text[], $12::jsonb[])`,
      [
        rows.map((r) => r.occurredAt),
        rows.map((r) => r.tenantId),
        rows.map((r) => r.keyId),
        rows.map((r) => r.keyPrefix),
        rows.map((r) => r.action),
        rows.map((r) => r.operationName),
        rows.map((r) => r.result),
        rows.map((r) => r.ip),
        rows.map((r) => r.userAgent),
        rows.map((r) => r.traceId),
        rows.map((r) => r.requestId),
        rows.map((r) => r.detailsJson),
      ],
    );
  }

  /**
   * A tenant's rows, newest first: a backward walk of audit_log_tenant_time_idx from the cursor,
   * the other filters applied to the rows it passes. The table is not partitioned, so the walk
   * reads only the rows it returns or filters out: no window to narrow. `audit_log.id` in the
   * ORDER BY is the column, not the `id::text` of the select list: rows of one instant must be in
   * bigint order, the cursor's, or a page boundary between ids 9 and 10 would skip a row.
   */
  async page(tenantId: string, query: AuditQuery): Promise<AuditRow[]> {
    const page = new NewestFirstPage(tenantId);
    if (query.action) page.where('action = ?', query.action);
    if (query.result) page.where('result = ?', query.result);
    if (query.from) page.where('occurred_at >= ?', query.from);
    if (query.to) page.where('occurred_at < ?', query.to);
    if (query.keyId) page.where('api_key_id = ?::uuid', query.keyId);
    if (query.before) page.before(query.before, 'bigint');
    const { where, limit } = page.finish(query.limit);
    const { rows } = await this.pool.query<{
      id: string;
      occurred_at: Date;
      time_us: string;
      action: string;
      operation_name: string | null;
      result: string;
      api_key_id: string | null;
      key_prefix: string | null;
      ip: string | null;
      user_agent: string | null;
      trace_id: string | null;
      request_id: string | null;
      details: Record<string, unknown>;
    }>(
      `SELECT id::text, occurred_at, (extract(epoch FROM occurred_at) * 1000000)::bigint::text AS time_us,
              action, operation_name, result, api_key_id, key_prefix, host(ip) AS ip, user_agent, trace_id,
              request_id, details
       FROM audit_log WHERE ${where}
       ORDER BY occurred_at DESC, audit_log.id DESC LIMIT ${limit}`,
      page.params,
    );
    return rows.map((r) => ({
      id: r.id,
      occurredAt: r.occurred_at,
      timeUs: r.time_us,
      action: r.action,
      operationName: r.operation_name,
      result: r.result,
      keyId: r.api_key_id,
      keyPrefix: r.key_prefix,
      ip: r.ip,
      userAgent: r.user_agent,
      traceId: r.trace_id,
      requestId: r.request_id,
      details: r.details,
    }));
  }
}
