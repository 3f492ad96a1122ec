import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import {
  AuditLogDocument,
  CreateApiKeyDocument,
  RevokeApiKeyDocument,
  ViewerDocument,
} from '../../generated/graphql.js';
import { scrapeMetric, startGateway, type RunningGateway } from '../../helpers/gateway.js';
import { errorCode, gql } from '../../helpers/graphql-client.js';
import { isolatedEnv, waitFor } from '../../helpers/test-env.js';

const ADMIN_KEY = 'agk_throttle-suite-admin-key-000000000000000';

/** A key of the same prefix (the 12 characters kept in clear) and a wrong secret. */
const wrongSecret = (key: string) => key.slice(0, 12) + randomBytes(32).toString('base64url');

async function createKey(url: string, name: string): Promise<{ key: string; id: string; prefix: string }> {
  const created = await gql(url, CreateApiKeyDocument, {
    key: ADMIN_KEY,
    variables: { name, scopes: ['analytics:read'] },
  });
  const { key, apiKey } = created.data!.createApiKey;
  return { key, id: apiKey.id, prefix: apiKey.prefix };
}

describe('failed authentication, throttled across two replicas sharing Redis', () => {
  const isolation = isolatedEnv('auth_throttle');
  let a: RunningGateway;
  let b: RunningGateway;

  before(async () => {
    const env = isolation.env({
      BOOTSTRAP_API_KEY: ADMIN_KEY,
      AUTH_THROTTLE_MAX_PER_ADDRESS: '8',
      AUTH_THROTTLE_MAX_PER_KEY_PREFIX: '3',
      AUTH_THROTTLE_WINDOW_MS: '60000',
    });
    a = await startGateway(env);
    b = await startGateway({ ...env, MIGRATE_ON_START: 'false' });
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
    await isolation.cleanup();
  });

  it('refuses a key prefix after its failures on either replica, with Retry-After, before the address limit', async () => {
    const target = await createKey(a.url, 'target');
    // Three wrong secrets for one key's prefix, spread over both replicas.
    for (const url of [a.url, b.url, a.url]) {
      const refused = await gql(url, ViewerDocument, { key: wrongSecret(target.key) });
      assert.equal(refused.status, 401);
      assert.equal(errorCode(refused), 'UNAUTHENTICATED');
    }
    // Now throttled on both replicas, even with the right secret: the prefix is under attack.
    for (const url of [b.url, a.url]) {
      const throttled = await gql(url, ViewerDocument, { key: target.key });
      assert.equal(throttled.status, 429, JSON.stringify(throttled.errors));
      assert.equal(errorCode(throttled), 'RATE_LIMITED');
      const retryAfter = Number(throttled.headers.get('retry-after'));
      assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
      assert.equal(throttled.errors![0]!.extensions!.retryAfter, retryAfter);
    }
    // Another key from the same address still works: 3 failures are below the address's 8.
    assert.equal((await gql(a.url, ViewerDocument, { key: ADMIN_KEY })).data?.viewer?.tenant, 'demo');
    assert.ok((await scrapeMetric(a.url, 'auth_throttled_total{subject="key_prefix"}')) >= 1);
    assert.equal(
      (await scrapeMetric(a.url, 'auth_failures_total')) + (await scrapeMetric(b.url, 'auth_failures_total')),
      3,
    );
  });

  it("audits a wrong secret for a known prefix under that key's tenant", async () => {
    await waitFor(async () => {
      const rows = await gql(a.url, AuditLogDocument, {
        key: ADMIN_KEY,
        variables: { filter: { action: 'authenticate' }, first: 50 },
      });
      return (rows.data?.auditLog.edges ?? []).filter((e) => e.node.result === 'unauthenticated').length >= 3;
    }, 10_000);
  });

  it('refuses the client address after its failures on either replica, whatever key it sends next', async () => {
    // Five more failures (3 so far): random tokens of no known prefix count against the address only.
    for (const url of [a.url, b.url, a.url, b.url, a.url]) {
      const refused = await gql(url, ViewerDocument, { key: `agk_${randomBytes(32).toString('base64url')}` });
      assert.equal(refused.status, 401);
    }
    for (const url of [a.url, b.url]) {
      const throttled = await gql(url, ViewerDocument, { key: ADMIN_KEY });
      assert.equal(throttled.status, 429);
      assert.equal(errorCode(throttled), 'RATE_LIMITED');
      assert.match(throttled.errors![0]!.message, /address/);
      assert.ok(Number(throttled.headers.get('retry-after')) >= 1);
    }
    // A request without credentials is not an authentication attempt: still answered.
    const anonymous = await fetch(`${a.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ __typename }' }),
    });
    assert.equal(anonymous.status, 200);
    assert.ok((await scrapeMetric(b.url, 'auth_throttled_total{subject="address"}')) >= 1);
  });
});

describe('refused keys audited under their tenant', () => {
  const isolation = isolatedEnv('auth_refused_audit');
  let gateway: RunningGateway;

  before(async () => {
    gateway = await startGateway(isolation.env({ BOOTSTRAP_API_KEY: ADMIN_KEY, AUDIT_FLUSH_INTERVAL_MS: '50' }));
  });
  after(async () => {
    await gateway?.stop();
    await isolation.cleanup();
  });

  it('writes the row of a revoked key presented again, and of a wrong secret, under the key and its tenant', async () => {
    const revoked = await createKey(gateway.url, 'leaked');
    const guessed = await createKey(gateway.url, 'guessed');
    await gql(gateway.url, RevokeApiKeyDocument, { key: ADMIN_KEY, variables: { id: revoked.id } });
    assert.equal(errorCode(await gql(gateway.url, ViewerDocument, { key: revoked.key })), 'UNAUTHENTICATED');
    assert.equal(
      errorCode(await gql(gateway.url, ViewerDocument, { key: wrongSecret(guessed.key) })),
      'UNAUTHENTICATED',
    );
    // A key of no known prefix belongs to no tenant: the tenant's log does not show it.
    await gql(gateway.url, ViewerDocument, { key: `agk_${randomBytes(32).toString('base64url')}` });

    let nodes: Array<{ keyId?: string | null; keyPrefix?: string | null; result: string; details?: unknown }> = [];
    await waitFor(async () => {
      const rows = await gql(gateway.url, AuditLogDocument, {
        key: ADMIN_KEY,
        variables: { filter: { action: 'authenticate' }, first: 50 },
      });
      nodes = (rows.data?.auditLog.edges ?? []).map((e) => e.node);
      return nodes.length >= 2;
    }, 10_000);
    const byKey = new Map(nodes.map((n) => [n.keyId, n]));
    assert.equal(byKey.get(revoked.id)?.result, 'unauthenticated');
    assert.equal(byKey.get(revoked.id)?.keyPrefix, revoked.prefix);
    assert.match(JSON.stringify(byKey.get(revoked.id)?.details), /revoked/);
    assert.equal(byKey.get(guessed.id)?.result, 'unauthenticated');
    assert.equal(nodes.length, 2, JSON.stringify(nodes));
  });
});
