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

  /** The conditions joined, and the placeholder of `limit`, which is bound last. */
  finish(limit: number): { where: string; limit: string } {
    this.params.push(limit);
    return { where: this.conditions.join(' AND '), limit: `$${this.params.length}` };
  }
}
