import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { createEventPartitionsWorker } from '../../../src/ingest/event-partitions.worker.js';
import { startGateway } from '../../helpers/gateway.js';
import { isolatedEnv, testPool } from '../../helpers/test-env.js';

const RETENTION_S = 3_600;

/**
 * The dedupe window's memory (event_message_ids) is purged by the partitions worker: only what is
 * older than the retention goes, so a retry inside the window is still recognised.
 */
describe('purge of old messageIds', () => {
  const isolation = isolatedEnv('msgid_purge');
  const pool = () => testPool(isolation.databaseUrl, 2);

  before(async () => {
    await (await startGateway(isolation.env())).stop();
  });
  after(() => isolation.cleanup());

  it('deletes the messageIds past the retention and keeps every one inside it', async () => {
    const db = pool();
    try {
      const tenant = randomUUID();
      // Ages in seconds: well inside, just inside, just past, far past the retention.
      const ages = { fresh: 0, inside: RETENTION_S - 120, past: RETENTION_S + 120, ancient: 40 * 86_400 };
      for (const [name, age] of Object.entries(ages)) {
        await db.query(
          `INSERT INTO event_message_ids (tenant_id, message_id, event_id, created_at)
           VALUES ($1, $2, $3, now() - make_interval(secs => $4))`,
          [tenant, name, randomUUID(), age],
        );
      }
      const worker = createEventPartitionsWorker(
        { pool: db, logger: pino({ level: 'silent' }) },
        { messageIdRetentionS: RETENTION_S, intervalMs: 3_600_000 },
      );
      await worker.runOnce();
      const { rows } = await db.query<{ message_id: string }>(
        'SELECT message_id FROM event_message_ids WHERE tenant_id = $1 ORDER BY message_id',
        [tenant],
      );
      assert.deepEqual(
        rows.map((r) => r.message_id),
        ['fresh', 'inside'],
      );
    } finally {
      await db.end();
    }
  });

  it('purges in batches until nothing past the retention is left', async () => {
    const db = pool();
    try {
      const tenant = randomUUID();
      await db.query(
        `INSERT INTO event_message_ids (tenant_id, message_id, event_id, created_at)
         SELECT $1, 'old-' || i, gen_random_uuid(), now() - interval '2 hours' FROM generate_series(1, 25) i`,
        [tenant],
      );
      const { EventRepository } = await import('../../../src/ingest/event.repository.js');
      const purged = await new EventRepository(db).purgeMessageIds(RETENTION_S, 10);
      assert.equal(purged, 25);
      const { rows } = await db.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM event_message_ids WHERE tenant_id = $1',
        [tenant],
      );
      assert.equal(rows[0]!.n, 0);
    } finally {
      await db.end();
    }
  });
});
