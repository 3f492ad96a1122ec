import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { pino } from 'pino';
import { Redis } from 'ioredis';
import { ApiKeyService } from '../../../src/auth/api-key.service.js';
import { encodeStreamEvent } from '../../../src/ingest/stream-event.js';
import { createStreamKeys } from '../../../src/redis/keys.js';
import { DeadLettersDocument, ReplayDeadLettersDocument } from '../../generated/graphql.js';
import { startGateway, type RunningGateway } from '../../helpers/gateway.js';
import { errorCode, gql } from '../../helpers/graphql-client.js';
import { REDIS_URL, isolatedEnv, testPool, waitFor } from '../../helpers/test-env.js';

const ADMIN = 'agk_deadletters-admin-key-0000000000000000000000';

describe('deadLetters', () => {
  const isolation = isolatedEnv('deadletters');
  let gateway: RunningGateway;
  let pool: pg.Pool;
  let redis: Redis;
  let tenantId: string;
  let otherAdmin: string;
  let reader: string;
  const keys = createStreamKeys(isolation.redisKeyPrefix, 2);

  before(async () => {
    gateway = await startGateway(
      isolation.env({ BOOTSTRAP_API_KEY: ADMIN, STREAM_PARTITIONS: '2', PERSIST_BATCH_WAIT_MS: '5' }),
    );
    pool = testPool(isolation.databaseUrl, 2);
    redis = new Redis(REDIS_URL);
    tenantId = (await pool.query<{ id: string }>("SELECT id FROM tenants WHERE slug = 'demo'")).rows[0]!.id;
    const apiKeys = new ApiKeyService(pool, redis, isolation.redisKeyPrefix, pino({ level: 'silent' }));
    otherAdmin = (await apiKeys.createKey({ tenantSlug: 'other', name: 'admin', scopes: ['admin'] })).plaintext;
    reader = (await apiKeys.createKey({ tenantSlug: 'demo', name: 'reader', scopes: ['analytics:read'] })).plaintext;
  });
  after(async () => {
    await gateway?.stop();
    redis?.disconnect();
    await pool?.end();
    await isolation.cleanup();
  });

  const deadLetterCount = async () => (await redis.xlen(keys.deadLetters(0))) + (await redis.xlen(keys.deadLetters(1)));

  it('lists each dead letter with its reason, deliveries, time and event, newest first, before and after a replay', async () => {
    const eventId = randomUUID();
    const refused = encodeStreamEvent({
      tenantId,
      id: eventId,
      type: 'purchase',
      userId: 'u-1',
      sessionId: null,
      messageId: null,
      occurredAt: Date.now() - 60_000,
      receivedAt: Date.now() - 60_000,
      value: 12.5,
      // Not JSON: Postgres refuses the jsonb cast, so the persister dead-letters the entry.
      properties: '{"broken":',
    });
    // Four letters over two partitions, appended in a known order.
    await redis.xadd(keys.stream(0), '*', 't', tenantId, 'e', 'not a payload');
    await waitFor(async () => (await deadLetterCount()) === 1, 10_000);
    await redis.xadd(keys.stream(1), '*', 't', tenantId, 'e', refused);
    await waitFor(async () => (await deadLetterCount()) === 2, 10_000);
    await redis.xadd(keys.stream(0), '*', 't', tenantId, 'e', '[1]');
    await waitFor(async () => (await deadLetterCount()) === 3, 10_000);
    const foreign = randomUUID();
    await redis.xadd(keys.stream(1), '*', 't', foreign, 'e', 'someone else');
    await waitFor(async () => (await deadLetterCount()) === 4, 10_000);

    const all = await gql(gateway.url, DeadLettersDocument, { key: ADMIN, variables: { first: 10 } });
    assert.equal(all.errors, undefined, JSON.stringify(all.errors));
    const page = all.data!.deadLetters;
    assert.equal(page.totalCount, 3);
    assert.equal(page.edges.length, 3);
    assert.equal(page.pageInfo.hasNextPage, false);
    const [newest, middle, oldest] = page.edges.map((e) => e.node);
    assert.match(newest!.reason, /^unparseable: /);
    assert.deepEqual(newest!.event, { raw: '[1]' });
    assert.match(middle!.reason, /^rejected: .*json/i);
    assert.equal(middle!.deliveries, 1);
    assert.ok(middle!.failedAt && Date.now() - new Date(middle!.failedAt).getTime() < 60_000);
    assert.match(middle!.id, /^1:\d+-\d+$/);
    const event = middle!.event as Record<string, unknown>;
    assert.equal(event.id, eventId);
    assert.equal(event.type, 'purchase');
    assert.equal(event.userId, 'u-1');
    assert.equal(event.value, 12.5);
    assert.deepEqual(oldest!.event, { raw: 'not a payload' });
    assert.match(oldest!.id, /^0:/);

    // Pages of one walk the same order, across partitions.
    const ids: string[] = [];
    let after: string | null = null;
    do {
      const one: Awaited<ReturnType<typeof gql<import('../../generated/graphql.js').DeadLettersQuery, unknown>>> =
        await gql(gateway.url, DeadLettersDocument, { key: ADMIN, variables: { first: 1, after } });
      assert.equal(one.data!.deadLetters.totalCount, 3);
      ids.push(...one.data!.deadLetters.edges.map((e) => e.node.id));
      after = one.data!.deadLetters.pageInfo.hasNextPage ? one.data!.deadLetters.pageInfo.endCursor : null;
    } while (after);
    assert.deepEqual(
      ids,
      page.edges.map((e) => e.node.id),
    );

    // Another tenant sees only its own; readers see nothing; bad cursors are the caller's fault.
    const theirs = await gql(gateway.url, DeadLettersDocument, { key: otherAdmin, variables: { first: 10 } });
    assert.equal(theirs.data!.deadLetters.totalCount, 0);
    assert.equal(errorCode(await gql(gateway.url, DeadLettersDocument, { key: reader })), 'FORBIDDEN');
    const bad = await gql(gateway.url, DeadLettersDocument, { key: ADMIN, variables: { after: 'garbage' } });
    assert.equal(errorCode(bad), 'BAD_USER_INPUT');

    // Reading consumed nothing: a replay still finds the same three, and they come back as new letters.
    const replayed = await gql(gateway.url, ReplayDeadLettersDocument, { key: ADMIN, variables: { limit: 10 } });
    assert.equal(replayed.data!.replayDeadLetters, 3);
    await waitFor(async () => (await deadLetterCount()) === 4, 10_000);
    const again = await gql(gateway.url, DeadLettersDocument, { key: ADMIN, variables: { first: 10 } });
    assert.equal(again.data!.deadLetters.totalCount, 3);
    const before = new Set(page.edges.map((e) => e.node.id));
    assert.ok(again.data!.deadLetters.edges.every((e) => !before.has(e.node.id)));
    assert.deepEqual(again.data!.deadLetters.edges.map((e) => e.node.reason.split(':')[0]).sort(), [
      'rejected',
      'unparseable',
      'unparseable',
    ]);
  });
});
