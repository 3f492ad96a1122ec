import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { RecordEventDocument } from '../generated/graphql.js';
import { spawnGateway } from '../helpers/gateway.js';
import { gql } from '../helpers/graphql-client.js';
import { isolatedEnv, testPool } from '../helpers/test-env.js';

describe('audit rows on shutdown', () => {
  const isolation = isolatedEnv('audit_shutdown');
  after(() => isolation.cleanup());

  it('writes the row of a mutation answered just before SIGTERM, though no flush was due', async () => {
    const key = 'agk_audit-shutdown-e2e-key-0123456789abcdefghijk';
    // A minute between flushes and batches of 200: only the shutdown flush can write this row.
    const gateway = await spawnGateway(
      isolation.env({ BOOTSTRAP_API_KEY: key, AUDIT_FLUSH_INTERVAL_MS: '60000', AUDIT_BATCH_SIZE: '200' }),
    );
    const pool = testPool(isolation.databaseUrl, 1);
    try {
      const response = await gql(gateway.url, RecordEventDocument, {
        key,
        headers: { 'x-request-id': 'shutdown-e2e-1' },
        variables: { input: { type: 'page_view', messageId: 'shutdown-1' } },
      });
      assert.ok(response.data?.recordEvent.id, JSON.stringify(response.errors));
      const before = await pool.query(`SELECT 1 FROM audit_log WHERE request_id = 'shutdown-e2e-1'`);
      gateway.child.kill('SIGTERM');
      const { code } = await gateway.exited;
      assert.equal(code, 0);
      const { rows } = await pool.query<{ action: string; result: string; details: { eventId: string } }>(
        `SELECT action, result, details FROM audit_log WHERE request_id = 'shutdown-e2e-1'`,
      );
      assert.equal(before.rows.length, 0, 'not written before the signal');
      assert.equal(rows.length, 1, gateway.output());
      assert.equal(rows[0]!.action, 'recordEvent');
      assert.equal(rows[0]!.result, 'success');
      assert.equal(rows[0]!.details.eventId, response.data!.recordEvent.id);
    } finally {
      if (gateway.child.exitCode === null) gateway.child.kill('SIGKILL');
      await pool.end();
    }
  });
});
