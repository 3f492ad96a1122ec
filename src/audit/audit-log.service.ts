import type pg from 'pg';
import { decodeCursor, encodeCursor, pageSize } from '../analytics/cursor.js';
import { BadUserInputError } from '../graphql/errors.js';
import type { AuditFilter } from './audit-log.args.js';
import { AuditLogRepository, type AuditRow } from './audit-log.repository.js';

export interface AuditPage {
  readonly edges: { cursor: string; node: AuditRow }[];
  readonly pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Reading the audit log: a tenant's rows only, newest first, in keyset pages. */
export class AuditLogService {
  private readonly repository: AuditLogRepository;

  constructor(pool: pg.Pool) {
    this.repository = new AuditLogRepository(pool);
  }

  async page(
    tenantId: string,
    filter: AuditFilter | null,
    first: number | null,
    after: string | null,
  ): Promise<AuditPage> {
    const limit = pageSize(first);
    if (filter?.from && filter.to && filter.from.getTime() >= filter.to.getTime()) {
      throw new BadUserInputError('filter.from must be before filter.to');
    }
    if (filter?.keyId && !UUID.test(filter.keyId)) throw new BadUserInputError('filter.keyId must be an API key id');
    let before: { timeUs: string; id: string } | null = null;
    if (after) {
      const [timeUs, id] = decodeCursor(after, 2) as [string, string];
      if (!/^-?\d{1,17}$/.test(timeUs) || !/^\d{1,19}$/.test(id)) {
        throw new BadUserInputError('`after` is not a cursor returned by this field');
      }
      before = { timeUs, id };
    }
    const rows = await this.repository.page(tenantId, { ...filter, before, limit: limit + 1 });
    const edges = rows.slice(0, limit).map((node) => ({ cursor: encodeCursor([node.timeUs, node.id]), node }));
    return { edges, pageInfo: { hasNextPage: rows.length > limit, endCursor: edges.at(-1)?.cursor ?? null } };
  }
}
