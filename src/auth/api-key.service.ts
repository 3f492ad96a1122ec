import type pg from 'pg';
import type { Redis } from '../redis/create-redis.js';
import { revocationChannel } from '../redis/keys.js';
import type { Logger } from '../observability/logger.js';
import { BadUserInputError } from '../graphql/errors.js';
import { apiKeyPrefix, generateApiKey, hashApiKey } from './api-key.js';
import { ApiKeyRepository, type ApiKeyRecord } from './api-key.repository.js';
import { isScope, type Scope } from './scopes.js';

export const BOOTSTRAP_TENANT = 'demo';
const TENANT_SLUG = /^[a-z0-9][a-z0-9-]{0,62}$/;

export interface CreatedApiKey {
  readonly apiKey: ApiKeyRecord;
  /** Shown once, to the creator; only its hash is stored. */
  readonly plaintext: string;
}

/** Creating, listing and revoking keys: shared by the GraphQL admin mutations and the CLI. */
export class ApiKeyService {
  private readonly repository: ApiKeyRepository;

  constructor(
    pool: pg.Pool,
    private readonly redis: Redis | undefined,
    private readonly redisKeyPrefix: string,
    private readonly logger: Logger,
  ) {
    this.repository = new ApiKeyRepository(pool);
  }

  async createKey(input: {
    tenantSlug: string;
    name: string;
    scopes: readonly string[];
    /** The key's own largest cost per operation; absent or null: COST_MAX_PER_OPERATION. */
    maxOperationCost?: number | null;
  }): Promise<CreatedApiKey> {
    const scopes = validateScopes(input.scopes);
    const maxOperationCost = input.maxOperationCost ?? null;
    if (
      maxOperationCost !== null &&
      !(Number.isInteger(maxOperationCost) && maxOperationCost >= 1 && maxOperationCost <= MAX_OPERATION_COST)
    ) {
      throw new BadUserInputError(`maxOperationCost must be an integer 1..${MAX_OPERATION_COST}`);
    }
    const name = input.name.trim();
    if (name.length < 1 || name.length > 128) throw new BadUserInputError('name must be 1..128 characters');
    const tenant = await this.repository.upsertTenant(validateTenantSlug(input.tenantSlug));
    const plaintext = generateApiKey();
    const apiKey = await this.repository.insertKey({
      tenantId: tenant.id,
      name,
      prefix: apiKeyPrefix(plaintext),
      hash: hashApiKey(plaintext),
      scopes,
      maxOperationCost,
    });
    this.logger.info({ keyId: apiKey!.id, tenant: tenant.slug, scopes, maxOperationCost }, 'api key created');
    return { apiKey: apiKey!, plaintext };
  }

  async listKeys(tenantSlug: string): Promise<ApiKeyRecord[]> {
    const tenant = await this.repository.findTenant(validateTenantSlug(tenantSlug));
    return tenant ? this.repository.listKeys(tenant.id) : [];
  }

  /**
   * Revokes in Postgres, then tells every replica through Redis so each drops the key from its
   * cache at once. If that broadcast is lost, each replica's cache TTL (≤ 4 s) still ends it.
   */
  async revokeKey(id: string, tenantId: string | null): Promise<ApiKeyRecord | undefined> {
    if (!UUID.test(id)) throw new BadUserInputError('id must be an API key id (a UUID)');
    const revoked = await this.repository.revokeKey(id, tenantId);
    if (!revoked) return undefined;
    this.logger.info({ keyId: id, tenant: revoked.tenantSlug }, 'api key revoked');
    await this.redis
      ?.publish(revocationChannel(this.redisKeyPrefix), id)
      .catch((err: unknown) => this.logger.warn({ err, keyId: id }, 'revocation broadcast failed; caches expire it'));
    return revoked;
  }

  /**
   * BOOTSTRAP_API_KEY: when no key with this hash exists, creates tenant `demo` and stores the
   * key with scope `admin`. Idempotent across restarts and replicas; a revoked bootstrap key
   * stays revoked.
   */
  async ensureBootstrapKey(plaintext: string): Promise<void> {
    const tenant = await this.repository.upsertTenant(BOOTSTRAP_TENANT, 'Demo');
    const created = await this.repository.insertKey(
      {
        tenantId: tenant.id,
        name: 'bootstrap',
        prefix: apiKeyPrefix(plaintext),
        hash: hashApiKey(plaintext),
        scopes: ['admin'],
      },
      { ifAbsent: true },
    );
    if (created) this.logger.info({ keyId: created.id, tenant: BOOTSTRAP_TENANT }, 'bootstrap admin key created');
  }
}

/** The bound the api_keys column enforces too. */
const MAX_OPERATION_COST = 10_000_000;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function validateScopes(scopes: readonly string[]): Scope[] {
  const unknown = scopes.filter((s) => !isScope(s));
  if (unknown.length > 0 || scopes.length === 0) {
    throw new BadUserInputError(`scopes must be a non-empty list of events:write, analytics:read, admin`, {
      unknownScopes: unknown,
    });
  }
  return [...new Set(scopes as Scope[])];
}

function validateTenantSlug(slug: string): string {
  if (!TENANT_SLUG.test(slug)) {
    throw new BadUserInputError('tenant must be 1..63 characters of a-z, 0-9 and "-", starting with a letter or digit');
  }
  return slug;
}
