import type pg from 'pg';
import type { Scope } from './scopes.js';

type Queryable = Pick<pg.Pool, 'query'> | pg.PoolClient;

export interface TenantRecord {
  readonly id: string;
  readonly slug: string;
  readonly name: string;
}

export interface ApiKeyRecord {
  readonly id: string;
  readonly tenantId: string;
  readonly tenantSlug: string;
  readonly name: string;
  readonly prefix: string;
  readonly scopes: Scope[];
  readonly createdAt: Date;
  readonly revokedAt: Date | null;
  readonly lastUsedAt: Date | null;
  readonly maxOperationCost: number | null;
}

export interface ApiKeyCandidate extends ApiKeyRecord {
  readonly hash: Buffer;
}

const KEY_COLUMNS = `
  k.id, k.tenant_id AS "tenantId", t.slug AS "tenantSlug", k.name, k.key_prefix AS prefix,
  k.scopes, k.created_at AS "createdAt", k.revoked_at AS "revokedAt", k.last_used_at AS "lastUsedAt",
  k.max_operation_cost AS "maxOperationCost"`;

/** SQL for tenants and API keys. Every statement that touches a key says which tenant it is in. */
export class ApiKeyRepository {
  constructor(private readonly db: Queryable) {}

  /** Creates the tenant when its slug is new; returns it either way (concurrent callers agree). */
  async upsertTenant(slug: string, name: string = slug): Promise<TenantRecord> {
    const { rows } = await this.db.query<TenantRecord>(
      `INSERT INTO tenants (slug, name) VALUES ($1, $2)
       ON CONFLICT (slug) DO UPDATE SET slug = EXCLUDED.slug
       RETURNING id, slug, name`,
      [slug, name],
    );
    return rows[0]!;
  }

  async findTenant(slug: string): Promise<TenantRecord | undefined> {
    const { rows } = await this.db.query<TenantRecord>('SELECT id, slug, name FROM tenants WHERE slug = $1', [slug]);
    return rows[0];
  }

  /**
   * Inserts a key; with `ifAbsent`, a key whose hash already exists (revoked or not) is left
   * alone and undefined is returned, so a bootstrap key is created once and never resurrected.
   */
  async insertKey(
    key: {
      tenantId: string;
      name: string;
      prefix: string;
      hash: Buffer;
      scopes: readonly Scope[];
      maxOperationCost?: number | null;
    },
    options: { ifAbsent?: boolean } = {},
  ): Promise<ApiKeyRecord | undefined> {
    const { rows } = await this.db.query<ApiKeyRecord>(
      `WITH k AS (
         INSERT INTO api_keys (tenant_id, name, key_prefix, key_hash, scopes, max_operation_cost)
         VALUES ($1, $2, $3, $4, $5, $6)
         ${options.ifAbsent ? 'ON CONFLICT (key_hash) DO NOTHING' : ''}
         RETURNING *
       )
       SELECT ${KEY_COLUMNS} FROM k JOIN tenants t ON t.id = k.tenant_id`,
      [key.tenantId, key.name, key.prefix, key.hash, key.scopes, key.maxOperationCost ?? null],
    );
    return rows[0];
  }

  /** The rows a presented key may be: the prefix narrows to (almost always) one, the hash decides. */
  async findCandidates(prefix: string): Promise<ApiKeyCandidate[]> {
    const { rows } = await this.db.query<ApiKeyCandidate>(
      `SELECT ${KEY_COLUMNS}, k.key_hash AS hash
       FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
       WHERE k.key_prefix = $1`,
      [prefix],
    );
    return rows;
  }

  async listKeys(tenantId: string): Promise<ApiKeyRecord[]> {
    const { rows } = await this.db.query<ApiKeyRecord>(
      `SELECT ${KEY_COLUMNS} FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
       WHERE k.tenant_id = $1 ORDER BY k.created_at, k.id`,
      [tenantId],
    );
    return rows;
  }

  /**
   * Marks a key revoked (keeping the first revocation time) and returns it; undefined when no
   * such key exists in `tenantId` (or anywhere, when `tenantId` is null: the operator's CLI).
   */
  async revokeKey(id: string, tenantId: string | null): Promise<ApiKeyRecord | undefined> {
    const { rows } = await this.db.query<ApiKeyRecord>(
      `WITH k AS (
         UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
         WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2::uuid)
         RETURNING *
       )
       SELECT ${KEY_COLUMNS} FROM k JOIN tenants t ON t.id = k.tenant_id`,
      [id, tenantId],
    );
    return rows[0];
  }

  /** Coarse on purpose: at most one write per key a minute, whatever the request rate. */
  async touchLastUsed(id: string): Promise<void> {
    await this.db.query(
      `UPDATE api_keys SET last_used_at = now()
       WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')`,
      [id],
    );
  }
}
