import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  CreateApiKeyDocument,
  EventTypesDocument,
  RecordEventsDocument,
  SystemStatusDocument,
} from '../../generated/graphql.js';
import { startGateway, type RunningGateway } from '../../helpers/gateway.js';
import { gql } from '../../helpers/graphql-client.js';
import { createTcpProxy, type TcpProxy } from '../../helpers/tcp-proxy.js';
import { REDIS_URL, isolatedEnv, waitFor } from '../../helpers/test-env.js';

const ADMIN = 'agk_system-status-admin-key-000000000000000000000';

describe('systemStatus', () => {
  const isolation = isolatedEnv('system_status');
  let gateway: RunningGateway;
  let proxy: TcpProxy;

  before(async () => {
    // Redis through a proxy, so the last test can take it away.
    proxy = await createTcpProxy(Number(new URL(REDIS_URL).port || 6379));
    const redisUrl = new URL(REDIS_URL);
    redisUrl.port = String(proxy.port);
    gateway = await startGateway(
      isolation.env({
        ROLE: 'all',
        BOOTSTRAP_API_KEY: ADMIN,
        STREAM_PARTITIONS: '2',
        ROLLUP_REFRESH_INTERVAL_MS: '200',
        REDIS_URL: redisUrl.toString(),
        TRACING_ENABLED: 'false',
      }),
    );
  });

  after(async () => {
    await gateway?.stop();
    await proxy?.close();
    await isolation.cleanup();
  });

  it('reports each partition with its groups, rollup staleness, cache counts and pools', async () => {
    const recorded = await gql(gateway.url, RecordEventsDocument, {
      key: ADMIN,
      variables: { events: Array.from({ length: 20 }, (_, i) => ({ type: 'status', userId: `u${i}` })) },
    });
    assert.equal(recorded.data?.recordEvents.accepted, 20);
    // Persisted and refreshed: then the rollups have a staleness, and eventTypes can be cached.
    await waitFor(async () => {
      const r = await gql(gateway.url, EventTypesDocument, { key: ADMIN, variables: { first: 5 } });
      return r.data?.eventTypes.some((e) => e.type === 'status' && e.count === 20) ?? false;
    }, 15_000);
    await gql(gateway.url, EventTypesDocument, { key: ADMIN, variables: { first: 5 } });

    const { data, errors } = await gql(gateway.url, SystemStatusDocument, { key: ADMIN });
    assert.equal(errors, undefined);
    const status = data!.systemStatus;

    assert.deepEqual(
      status.streams.map((s) => s.partition),
      [0, 1],
    );
    for (const partition of status.streams) {
      assert.equal(partition.deadLetters, 0);
      assert.deepEqual(
        partition.groups.map((g) => g.name),
        ['aggregate', 'persist'],
      );
      for (const g of partition.groups) assert.equal(g.lag, 0, `${g.name} has read partition ${partition.partition}`);
    }

    assert.deepEqual(status.rollups.map((r) => r.source).sort(), [
      'rollup_day',
      'rollup_hour',
      'rollup_minute',
      'rollup_type',
      'rollup_user',
    ]);
    for (const r of status.rollups) assert.ok(r.stalenessMs >= 0 && r.stalenessMs < 60_000, `${r.source} is fresh`);

    // The last eventTypes was answered from the cache; every earlier one computed and stored.
    assert.ok(status.cache.hits >= 1, `${status.cache.hits} hits`);
    assert.ok(status.cache.misses >= 1, `${status.cache.misses} misses`);
    assert.equal(status.cache.hitRatio, status.cache.hits / (status.cache.hits + status.cache.misses));

    assert.deepEqual(status.pools.map((p) => p.name).sort(), ['event_reads', 'main']);
    const main = status.pools.find((p) => p.name === 'main')!;
    assert.ok(main.total >= 1 && main.idle <= main.total && main.waiting >= 0);
  });

  it('is for admins only', async () => {
    const created = await gql(gateway.url, CreateApiKeyDocument, {
      key: ADMIN,
      variables: { name: 'reader', scopes: ['analytics:read'] },
    });
    const reader = created.data!.createApiKey.key;
    const { data, errors } = await gql(gateway.url, SystemStatusDocument, { key: reader });
    assert.equal(data, null);
    assert.equal(errors?.[0]?.extensions?.code, 'FORBIDDEN');
    const anonymous = await gql(gateway.url, SystemStatusDocument);
    assert.equal(anonymous.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
  });

  it('answers SERVICE_UNAVAILABLE, not an internal error, while Redis is unreachable', async () => {
    proxy.cut();
    try {
      const { errors } = await gql(gateway.url, SystemStatusDocument, { key: ADMIN });
      assert.equal(errors?.[0]?.extensions?.code, 'SERVICE_UNAVAILABLE');
      assert.match(errors![0]!.message, /streams/);
    } finally {
      proxy.restore();
    }
  });
});
