import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CreateApiKeyDocument, RevokeApiKeyDocument, ViewerDocument } from '../../generated/graphql.js';
import { startGateway, type RunningGateway } from '../../helpers/gateway.js';
import { errorCode, gql } from '../../helpers/graphql-client.js';
import { createTcpProxy, type TcpProxy } from '../../helpers/tcp-proxy.js';
import { isolatedEnv, waitFor, testPool } from '../../helpers/test-env.js';
import pg from 'pg';
import { pino } from 'pino';
import { ApiKeyService } from '../../../src/auth/api-key.service.js';

const ADMIN_KEY = 'agk_test-admin-key-for-api-keys-suite-000000000';

/** Reads one counter sample from a gateway's /metrics. */
async function metric(url: string, sample: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(sample + ' '));
  return line ? Number(line.split(' ')[1]) : 0;
}

describe('API keys over GraphQL, on two replicas', () => {
  const isolation = isolatedEnv('api_keys');
  let a: RunningGateway;
  let b: RunningGateway;
  let bRedis: TcpProxy;
  let bPostgres: TcpProxy;
  let pool: pg.Pool;
  let service: ApiKeyService;

  before(async () => {
    a = await startGateway(isolation.env({ BOOTSTRAP_API_KEY: ADMIN_KEY }));
    // Replica B reaches Redis and Postgres through proxies the tests can cut.
    bRedis = await createTcpProxy(6379);
    bPostgres = await createTcpProxy(5432);
    const viaProxy = new URL(isolation.databaseUrl);
    viaProxy.port = String(bPostgres.port);
    b = await startGateway(
      isolation.env({
        DATABASE_URL: viaProxy.toString(),
        REDIS_URL: `redis://127.0.0.1:${bRedis.port}`,
        MIGRATE_ON_START: 'false',
      }),
    );
    pool = testPool(isolation.databaseUrl, 2);
    service = new ApiKeyService(pool, undefined, isolation.redisKeyPrefix, pino({ level: 'silent' }));
  });

  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await Promise.all([bRedis?.close(), bPostgres?.close(), pool?.end()]);
    await isolation.cleanup();
  });

  async function createKey(scopes: string[], name = 'test') {
    const created = await gql(a.url, CreateApiKeyDocument, { key: ADMIN_KEY, variables: { name, scopes } });
    assert.equal(created.errors, undefined, JSON.stringify(created.errors));
    return created.data!.createApiKey;
  }

  it('answers the viewer of a created key on every replica', async () => {
    const { key, apiKey } = await createKey(['analytics:read'], 'dashboard');
    assert.match(key, /^agk_/);
    assert.equal(apiKey.prefix, key.slice(0, 12));
    for (const gateway of [a, b]) {
      const viewer = await gql(gateway.url, ViewerDocument, { key });
      assert.deepEqual(viewer.data?.viewer, { tenant: 'demo', keyName: 'dashboard', scopes: ['analytics:read'] });
    }
  });

  it('refuses a request without a key, with an unknown key, or with a malformed header', async () => {
    const none = await gql(a.url, ViewerDocument);
    assert.equal(errorCode(none), 'UNAUTHENTICATED');
    assert.equal(none.status, 401);
    assert.equal(none.data, null);

    const wrong = await gql(a.url, ViewerDocument, { key: 'agk_' + 'x'.repeat(43) });
    assert.equal(errorCode(wrong), 'UNAUTHENTICATED');
    assert.equal(wrong.status, 401);

    const malformed = await gql(a.url, ViewerDocument, { headers: { authorization: 'Basic dXNlcjpwYXNz' } });
    assert.equal(errorCode(malformed), 'UNAUTHENTICATED');
  });

  it('refuses an operation whose scope the key lacks with FORBIDDEN, and runs nothing', async () => {
    const { key } = await createKey(['analytics:read', 'events:write'], 'no-admin');
    const denied = await gql(a.url, CreateApiKeyDocument, { key, variables: { name: 'escalate', scopes: ['admin'] } });
    assert.equal(errorCode(denied), 'FORBIDDEN');
    assert.equal(denied.data, null);
    const names = (await service.listKeys('demo')).map((k) => k.name);
    assert.ok(!names.includes('escalate'), 'the resolver did not run');
  });

  it('validates arguments of key creation with BAD_USER_INPUT', async () => {
    const bad = await gql(a.url, CreateApiKeyDocument, { key: ADMIN_KEY, variables: { name: 'x', scopes: ['root'] } });
    assert.equal(errorCode(bad), 'BAD_USER_INPUT');
    const empty = await gql(a.url, CreateApiKeyDocument, {
      key: ADMIN_KEY,
      variables: { name: ' ', scopes: ['admin'] },
    });
    assert.equal(errorCode(empty), 'BAD_USER_INPUT');
  });

  it('checks a key against Postgres once per cache period, not once per request', async () => {
    const { key } = await createKey(['analytics:read'], 'hot');
    const verifiedBefore = await metric(a.url, 'auth_key_lookups_total{outcome="verified"}');
    const cachedBefore = await metric(a.url, 'auth_key_lookups_total{outcome="cached"}');
    await Promise.all(Array.from({ length: 50 }, () => gql(a.url, ViewerDocument, { key })));
    const verified = (await metric(a.url, 'auth_key_lookups_total{outcome="verified"}')) - verifiedBefore;
    const cached = (await metric(a.url, 'auth_key_lookups_total{outcome="cached"}')) - cachedBefore;
    assert.ok(verified <= 2, `verified ${verified} times`);
    assert.ok(cached >= 48, `cached ${cached} times`);
  });

  it('stops a revoked key on the other replica within 5 s', async () => {
    const { key, apiKey } = await createKey(['analytics:read'], 'to-revoke');
    assert.ok((await gql(b.url, ViewerDocument, { key })).data?.viewer, 'B has the key cached');
    const revoked = await gql(a.url, RevokeApiKeyDocument, { key: ADMIN_KEY, variables: { id: apiKey.id } });
    assert.ok(revoked.data?.revokeApiKey.revokedAt);
    const tookMs = await waitFor(
      async () => errorCode(await gql(b.url, ViewerDocument, { key })) === 'UNAUTHENTICATED',
      5_000,
    );
    assert.ok(tookMs < 5_000);
    const message = (await gql(b.url, ViewerDocument, { key })).errors?.[0]?.message;
    assert.match(message ?? '', /revoked/);
  });

  it('stops a revoked key within 5 s even when the replica cannot hear the Redis broadcast', async () => {
    const { key, apiKey } = await createKey(['analytics:read'], 'revoke-while-deaf');
    assert.ok((await gql(b.url, ViewerDocument, { key })).data?.viewer);
    bRedis.cut();
    try {
      await gql(a.url, RevokeApiKeyDocument, { key: ADMIN_KEY, variables: { id: apiKey.id } });
      const tookMs = await waitFor(
        async () => errorCode(await gql(b.url, ViewerDocument, { key })) === 'UNAUTHENTICATED',
        5_000,
      );
      assert.ok(tookMs < 5_000, `took ${tookMs} ms`);
    } finally {
      bRedis.restore();
    }
  });

  it('keeps recently verified keys working while Postgres is unreachable; unknown keys get SERVICE_UNAVAILABLE', async () => {
    const { key } = await createKey(['analytics:read'], 'outage');
    assert.ok((await gql(b.url, ViewerDocument, { key })).data?.viewer);
    bPostgres.cut();
    try {
      // Past the cache TTL (3 s by default), so B must try Postgres and fall back.
      await new Promise((r) => setTimeout(r, 3_300));
      const during = await gql(b.url, ViewerDocument, { key });
      assert.deepEqual(during.data?.viewer?.keyName, 'outage');
      const unknown = await gql(b.url, ViewerDocument, { key: 'agk_' + 'u'.repeat(43) });
      assert.equal(errorCode(unknown), 'SERVICE_UNAVAILABLE');
      assert.equal(unknown.status, 503);
      assert.ok((await metric(b.url, 'auth_key_lookups_total{outcome="stale"}')) >= 1);
    } finally {
      bPostgres.restore();
    }
    await waitFor(async () => (await gql(b.url, ViewerDocument, { key })).data?.viewer?.keyName === 'outage', 10_000);
  });

  it('does not let an admin see or revoke a key of another tenant', async () => {
    const other = await service.createKey({ tenantSlug: 'other', name: 'theirs', scopes: ['analytics:read'] });
    const attempt = await gql(a.url, RevokeApiKeyDocument, { key: ADMIN_KEY, variables: { id: other.apiKey.id } });
    assert.equal(errorCode(attempt), 'BAD_USER_INPUT');
    assert.match(attempt.errors?.[0]?.message ?? '', /No API key with this id/);
    const viewer = await gql(a.url, ViewerDocument, { key: other.plaintext });
    assert.deepEqual(viewer.data?.viewer, { tenant: 'other', keyName: 'theirs', scopes: ['analytics:read'] });
    const malformed = await gql(a.url, RevokeApiKeyDocument, { key: ADMIN_KEY, variables: { id: 'not-a-uuid' } });
    assert.equal(errorCode(malformed), 'BAD_USER_INPUT');
  });
});
