import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { ViewerDocument } from '../../generated/graphql.js';
import { startGateway } from '../../helpers/gateway.js';
import { errorCode, gql } from '../../helpers/graphql-client.js';
import { isolatedEnv } from '../../helpers/test-env.js';

describe('BOOTSTRAP_API_KEY', () => {
  const isolation = isolatedEnv('bootstrap');
  after(() => isolation.cleanup());

  async function keyRows() {
    const client = new pg.Client({ connectionString: isolation.databaseUrl });
    await client.connect();
    try {
      const { rows } = await client.query<{
        id: string;
        slug: string;
        scopes: string[];
        revoked: boolean;
        key_hash: Buffer;
      }>(
        `SELECT k.id, t.slug, k.scopes, k.revoked_at IS NOT NULL AS revoked, k.key_hash
         FROM api_keys k JOIN tenants t ON t.id = k.tenant_id`,
      );
      return { rows, client };
    } catch (err) {
      await client.end();
      throw err;
    }
  }

  it('creates tenant demo with that admin key, once, across restarts, and stores only its hash', async () => {
    const env = isolation.env({ BOOTSTRAP_API_KEY: 'k' });
    const first = await startGateway(env);
    const viewer = await gql(first.url, ViewerDocument, { key: 'k' });
    assert.deepEqual(viewer.data?.viewer, { tenant: 'demo', keyName: 'bootstrap', scopes: ['admin'] });
    assert.equal(errorCode(await gql(first.url, ViewerDocument, { key: 'other' })), 'UNAUTHENTICATED');
    await first.stop();

    const second = await startGateway(env);
    assert.ok((await gql(second.url, ViewerDocument, { key: 'k' })).data?.viewer);
    await second.stop();

    const { rows, client } = await keyRows();
    await client.end();
    assert.equal(rows.length, 1, 'restarting did not add a second key');
    assert.equal(rows[0]!.slug, 'demo');
    assert.deepEqual(rows[0]!.scopes, ['admin']);
    assert.deepEqual(
      rows[0]!.key_hash,
      createHash('sha256').update('k').digest(),
      'only the SHA-256 of the key is stored',
    );
  });

  it('does not bring a revoked bootstrap key back on restart', async () => {
    const { rows, client } = await keyRows();
    await client.query('UPDATE api_keys SET revoked_at = now() WHERE id = $1', [rows[0]!.id]);
    await client.end();
    const gateway = await startGateway(isolation.env({ BOOTSTRAP_API_KEY: 'k' }));
    try {
      const refused = await gql(gateway.url, ViewerDocument, { key: 'k' });
      assert.equal(errorCode(refused), 'UNAUTHENTICATED');
      assert.match(refused.errors?.[0]?.message ?? '', /revoked/);
    } finally {
      await gateway.stop();
    }
  });
});
