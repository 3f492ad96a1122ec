import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import type pg from 'pg';
import { pino } from 'pino';
import { ApiKeyService } from '../../../src/auth/api-key.service.js';
import { normalizeEvent } from '../../../src/ingest/event-validation.js';
import { decodeStreamEvent, type StreamEvent } from '../../../src/ingest/stream-event.js';
import { createMetrics } from '../../../src/observability/metrics.js';
import { createLiveFeed } from '../../../src/realtime/live-feed.js';
import { createWindowPublisher } from '../../../src/realtime/window.publisher.js';
import { createAggregateWorker } from '../../../src/realtime/aggregate.worker.js';
import { createWindowStore } from '../../../src/realtime/window-store.js';
import { windowStart, WINDOW_MS } from '../../../src/realtime/window.js';
import { createEventStream } from '../../../src/ingest/event-stream.js';
import { ensureGroup, fieldsOf, type StreamEntry } from '../../../src/streams/stream-entries.js';
import { createStreamKeys } from '../../../src/redis/keys.js';
import { RecordEventsDocument, type EventInput } from '../../generated/graphql.js';
import { scrapeMetric, spawnGatewayPair, stopGateways, type SpawnedGateway } from '../../helpers/gateway.js';
import { gql } from '../../helpers/graphql-client.js';
import { REDIS_URL, isolatedEnv, streamGroupsSettled, testPool, waitFor } from '../../helpers/test-env.js';

const ADMIN = 'agk_windows-admin-key-000000000000000000000000000';
const PARTITIONS = 2;
/**
 * The gateways' REALTIME_WINDOW_GRACE_MS and this file's stores': long enough that an hour ending
 * while the test runs leaves its events on time, so no assertion depends on when the test starts.
 */
const GRACE_MS = 10 * 60_000;

function lcg(seed: number) {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

describe('live windows (aggregate consumer group)', () => {
  const isolation = isolatedEnv('windows');
  const gateways: SpawnedGateway[] = [];
  let pool: pg.Pool;
  let redis: Redis;
  let adminB: string;
  let tenantA: string;
  let tenantB: string;
  const keys = createStreamKeys(isolation.redisKeyPrefix, PARTITIONS);
  // Chosen once: every event below falls in this hour, whatever the clock does during the test.
  const hourStart = windowStart('ONE_HOUR', Date.now());
  const store = (graceMs = GRACE_MS) => createWindowStore(redis, keys, { graceMs });

  before(async () => {
    const env = isolation.env({
      BOOTSTRAP_API_KEY: ADMIN,
      STREAM_PARTITIONS: String(PARTITIONS),
      PERSIST_BATCH_WAIT_MS: '10',
      REALTIME_WINDOW_GRACE_MS: String(GRACE_MS),
    });
    // Two processes against the same Postgres and Redis, each with its own consumers.
    gateways.push(...(await spawnGatewayPair(env)));
    pool = testPool(isolation.databaseUrl, 3);
    redis = new Redis(REDIS_URL);
    const apiKeys = new ApiKeyService(pool, redis, isolation.redisKeyPrefix, pino({ level: 'silent' }));
    adminB = (await apiKeys.createKey({ tenantSlug: 'other', name: 'admin', scopes: ['admin'] })).plaintext;
    const tenants = await pool.query<{ slug: string; id: string }>('SELECT slug, id FROM tenants');
    tenantA = tenants.rows.find((t) => t.slug === 'demo')!.id;
    tenantB = tenants.rows.find((t) => t.slug === 'other')!.id;
  });
  after(async () => {
    await stopGateways(gateways);
    redis?.disconnect();
    await pool?.end();
    await isolation.cleanup();
  });

  const settled = () => streamGroupsSettled(redis, keys);

  function generate(n: number, seed: number, prefix: string): EventInput[] {
    const rnd = lcg(seed);
    const span = Math.max(1, Date.now() - hourStart);
    return Array.from({ length: n }, (_, i) => ({
      type: ['page_view', 'purchase', 'click'][Math.floor(rnd() ** 2 * 3)]!,
      userId: rnd() < 0.05 ? null : `user-${Math.floor(rnd() ** 2 * 400)}`,
      messageId: `${prefix}-${i}`,
      value: rnd() < 0.2 ? null : Math.round(Math.exp(2 + 1.4 * (rnd() + rnd() + rnd() - 1.5) * 2) * 100) / 100,
      timestamp: new Date(hourStart + Math.floor(rnd() * span)).toISOString(),
    }));
  }

  it('equal SQL over the persisted events, counted on two processes over two partitions, each event once', async () => {
    const events = generate(3000, 1, 'a');
    const late = Array.from({ length: 50 }, (_, i) => ({
      type: 'page_view',
      userId: 'late',
      value: 1,
      messageId: `late-${i}`,
      timestamp: new Date(Date.now() - 3 * WINDOW_MS.ONE_HOUR).toISOString(),
    }));
    const batches = [events.slice(0, 1000), events.slice(1000, 2000), events.slice(2000), late];
    for (const [i, batch] of batches.entries()) {
      const res = await gql(gateways[i % 2]!.url, RecordEventsDocument, { key: ADMIN, variables: { events: batch } });
      assert.equal(res.data?.recordEvents.accepted, batch.length, JSON.stringify(res.errors));
    }
    // A retry of a whole batch: duplicates, counted nowhere twice.
    const retry = await gql(gateways[1]!.url, RecordEventsDocument, { key: ADMIN, variables: { events: batches[0]! } });
    assert.equal(retry.data?.recordEvents.duplicates, 1000);
    const other = generate(200, 2, 'b');
    assert.equal(
      (await gql(gateways[0]!.url, RecordEventsDocument, { key: adminB, variables: { events: other } })).data
        ?.recordEvents.accepted,
      200,
    );

    await waitFor(async () => {
      const { rows } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM events');
      return rows[0]!.n === 3250 && (await settled());
    }, 30_000);

    for (const type of [null, 'purchase']) {
      const got = await store().read(tenantA, type, 'ONE_HOUR', hourStart);
      const { rows } = await pool.query(
        `SELECT count(*)::int AS n, sum(value) AS sum, min(value) AS min, max(value) AS max,
                count(DISTINCT user_id)::int AS users,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY value) AS p50,
                percentile_cont(0.95) WITHIN GROUP (ORDER BY value) AS p95,
                percentile_cont(0.99) WITHIN GROUP (ORDER BY value) AS p99
         FROM events WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3 AND ($4::text IS NULL OR type = $4)`,
        [tenantA, new Date(hourStart), new Date(hourStart + WINDOW_MS.ONE_HOUR), type],
      );
      const want = rows[0]!;
      const label = `type ${type}`;
      assert.equal(got.count, want.n, label);
      assert.ok(Math.abs(got.sum! - want.sum) <= 1e-9 * Math.abs(want.sum), `${label} sum ${got.sum} vs ${want.sum}`);
      assert.equal(got.min, want.min, label);
      assert.equal(got.max, want.max, label);
      for (const q of ['p50', 'p95', 'p99'] as const) {
        assert.ok(Math.abs(got[q]! - want[q]) <= 0.01 * want[q], `${label} ${q} ${got[q]} vs ${want[q]}`);
      }
      assert.ok(
        Math.abs(got.uniqueUsers - want.users) <= 0.02 * want.users,
        `${label} users ${got.uniqueUsers} vs ${want.users}`,
      );
      assert.ok(got.revision >= 2, `${label} revision ${got.revision}`);
      // Open now (the test ends well within GRACE_MS of the hour), and final exactly from the end
      // of the hour plus the grace period, read on fixed clocks.
      assert.equal(got.final, false, label);
      const closesAt = hourStart + WINDOW_MS.ONE_HOUR + GRACE_MS;
      assert.equal((await store().read(tenantA, type, 'ONE_HOUR', hourStart, closesAt - 1)).final, false, label);
      const closed = await store().read(tenantA, type, 'ONE_HOUR', hourStart, closesAt);
      assert.deepEqual({ ...closed, final: true }, { ...got, final: true }, `${label}: the same window, final`);
      assert.equal(closed.final, true, label);
    }

    // The same arguments for the other tenant: only its own events.
    const b = await store().read(tenantB, null, 'ONE_HOUR', hourStart);
    const { rows } = await pool.query<{ n: number; sum: number }>(
      'SELECT count(*)::int AS n, sum(value) AS sum FROM events WHERE tenant_id = $1 AND occurred_at >= $2',
      [tenantB, new Date(hourStart)],
    );
    assert.equal(b.count, rows[0]!.n);
    assert.ok(Math.abs(b.sum! - rows[0]!.sum) <= 1e-9 * rows[0]!.sum);

    // The 50 late events are stored, and counted as late for each window, once over both processes.
    let lateHour = 0;
    for (const g of gateways) lateHour += await scrapeMetric(g.url, 'late_events_total{window="ONE_HOUR"}');
    assert.equal(lateHour, 50);
    // Lag per window length is exported by the processes that counted batches.
    let lags = 0;
    for (const g of gateways) lags += await scrapeMetric(g.url, 'aggregate_lag_seconds{window="ONE_HOUR"}');
    assert.ok(lags > 0 && lags < 60, `aggregate_lag_seconds ${lags}`);
    const lateWindow = await store().read(tenantA, null, 'ONE_HOUR', Date.now() - 3 * WINDOW_MS.ONE_HOUR);
    assert.equal(lateWindow.count, 0);
  });

  it('counts an entry once when two consumers race for it or one applies it twice', async () => {
    const handKeys = createStreamKeys(`${isolation.redisKeyPrefix}hand:`, 1);
    const handStore = createWindowStore(redis, handKeys, { graceMs: 30_000 });
    const stream = handKeys.stream(0);
    await ensureGroup(redis, stream, 'aggregate');
    const now = Date.now();
    const events = Array.from({ length: 10 }, (_, i) => {
      const r = normalizeEvent({ type: 'e', userId: `u${i}`, value: i }, { tenantId: tenantA, receivedAt: now });
      assert.ok(r.ok);
      return r.event;
    });
    await createEventStream(redis, handKeys, { dedupeWindowS: 60, maxLength: 1000 }).enqueue(tenantA, events);
    const reply = (await redis.xreadgroup('GROUP', 'aggregate', 'c1', 'COUNT', 10, 'STREAMS', stream, '>')) as [
      string,
      StreamEntry[],
    ][];
    const entries = reply[0]![1].map(([entryId, raw]) => ({ entryId, event: decodeStreamEvent(fieldsOf(raw).e!) }));
    assert.equal(entries.length, 10);

    // c2 takes over half of c1's entries and counts them first.
    await redis.xclaim(stream, 'aggregate', 'c2', 0, ...entries.slice(0, 5).map((e) => e.entryId));
    await handStore.apply(0, 'aggregate', 'c2', entries.slice(0, 5), now);
    const first = await handStore.apply(0, 'aggregate', 'c1', entries, now);
    assert.equal(first.applied, 5, 'c1 counts only what c2 had not');
    const again = await handStore.apply(0, 'aggregate', 'c1', entries, now);
    assert.equal(again.applied, 0);

    const w = await handStore.read(tenantA, 'e', 'ONE_MINUTE', now);
    assert.equal(w.count, 10);
    assert.equal(w.sum, 45);
    assert.equal(w.min, 0);
    assert.equal(w.max, 9);
    assert.equal(w.uniqueUsers, 10);
    assert.equal(((await redis.xpending(stream, 'aggregate')) as [number])[0], 0, 'everything acknowledged');
  });

  /** percentile_cont over sorted values, as Postgres computes it. */
  function percentile(sorted: number[], q: number): number {
    const h = q * (sorted.length - 1);
    const lo = Math.floor(h);
    return sorted[lo]! + (h - lo) * ((sorted[Math.min(lo + 1, sorted.length - 1)] ?? 0) - sorted[lo]!);
  }

  it('folds one batch of mixed types into its windows with the exact counts, sums and extremes', async () => {
    const handKeys = createStreamKeys(`${isolation.redisKeyPrefix}mixed:`, 1);
    const handStore = createWindowStore(redis, handKeys, { graceMs: 30_000 });
    const stream = handKeys.stream(0);
    await ensureGroup(redis, stream, 'aggregate');
    const rnd = lcg(11);
    const now = Date.now();
    const types = ['page_view', 'purchase', 'latency', 'signup', 'refund'];
    // Long-tailed positives, negatives (refunds), zeros, nulls, and a few magnitudes beyond the
    // counter strings (1e20, 1e-12 counts as zero) so every storage path of a bucket is taken.
    const valueOf = (type: string, i: number): number | null => {
      if (type === 'signup') return null;
      if (i % 97 === 0) return 0;
      if (i % 331 === 0) return 1e20;
      if (i % 409 === 0) return 1e-12;
      const v = Math.round(Math.exp(1 + 1.6 * (rnd() + rnd() + rnd() - 1.5) * 2) * 1000) / 1000;
      return type === 'refund' ? -v : v;
    };
    const events: StreamEvent[] = Array.from({ length: 4000 }, (_, i) => {
      const type = types[Math.floor(rnd() ** 1.5 * types.length)]!;
      const r = normalizeEvent(
        { type, userId: rnd() < 0.1 ? null : `mixed-${Math.floor(rnd() * 1500)}`, value: valueOf(type, i) },
        { tenantId: tenantA, receivedAt: now },
      );
      assert.ok(r.ok, r.ok ? '' : r.message);
      return r.event;
    });
    const appender = createEventStream(redis, handKeys, { dedupeWindowS: 60, maxLength: 100_000 });
    for (let i = 0; i < events.length; i += 1000) await appender.enqueue(tenantA, events.slice(i, i + 1000));
    const reply = (await redis.xreadgroup('GROUP', 'aggregate', 'c1', 'COUNT', 10_000, 'STREAMS', stream, '>')) as [
      string,
      StreamEntry[],
    ][];
    const entries = reply[0]![1].map(([entryId, raw]) => ({ entryId, event: decodeStreamEvent(fieldsOf(raw).e!) }));
    assert.equal(entries.length, 4000);
    const result = await handStore.apply(0, 'aggregate', 'c1', entries, now);
    assert.equal(result.applied, 4000);
    assert.equal(result.touched.length, 3 * (new Set(events.map((e) => e.type)).size + 1), 'one delta per window');

    for (const type of [null, ...types]) {
      const mine = events.filter((e) => type === null || e.type === type);
      const values = mine.flatMap((e) => (e.value === null ? [] : [e.value])).sort((a, b) => a - b);
      const users = new Set(mine.flatMap((e) => (e.userId === null ? [] : [e.userId]))).size;
      for (const window of ['ONE_MINUTE', 'FIVE_MINUTES', 'ONE_HOUR'] as const) {
        const got = await handStore.read(tenantA, type, window, now);
        const label = `type ${type} ${window}`;
        assert.equal(got.count, mine.length, label);
        assert.equal(got.revision, 1, `${label}: one batch, one revision`);
        assert.ok(Math.abs(got.uniqueUsers - users) <= 0.02 * users, `${label} users ${got.uniqueUsers} vs ${users}`);
        if (values.length === 0) {
          assert.deepEqual([got.sum, got.min, got.max, got.p50], [null, null, null, null], label);
          continue;
        }
        const sum = values.reduce((a, b) => a + b, 0);
        assert.ok(Math.abs(got.sum! - sum) <= 1e-9 * Math.abs(sum), `${label} sum ${got.sum} vs ${sum}`);
        assert.equal(got.min, values[0], label);
        assert.equal(got.max, values.at(-1), label);
        for (const [q, p] of [
          ['p50', 0.5],
          ['p95', 0.95],
          ['p99', 0.99],
        ] as const) {
          const want = percentile(values, p);
          // Within 1%, or equal where the value counts as zero in the histogram.
          const ok =
            Math.abs(want) < 1e-9 ? Math.abs(got[q]!) < 1e-9 : Math.abs(got[q]! - want) <= 0.01 * Math.abs(want);
          assert.ok(ok, `${label} ${q} ${got[q]} vs ${want}`);
        }
      }
    }
  });

  it('counts a batch delivered twice once: reclaimed from a dead consumer by the worker, then replayed by hand', async () => {
    const handKeys = createStreamKeys(`${isolation.redisKeyPrefix}redeliver:`, 1);
    const handStore = createWindowStore(redis, handKeys, { graceMs: 30_000 });
    const stream = handKeys.stream(0);
    await ensureGroup(redis, stream, 'aggregate');
    const now = Date.now();
    const events = Array.from({ length: 300 }, (_, i) => {
      const r = normalizeEvent(
        { type: 'redelivered', userId: `r${i % 120}`, value: i },
        { tenantId: tenantA, receivedAt: now },
      );
      assert.ok(r.ok);
      return r.event;
    });
    await createEventStream(redis, handKeys, { dedupeWindowS: 60, maxLength: 10_000 }).enqueue(tenantA, events);
    const reply = (await redis.xreadgroup('GROUP', 'aggregate', 'ghost', 'COUNT', 1000, 'STREAMS', stream, '>')) as [
      string,
      StreamEntry[],
    ][];
    const entries = reply[0]![1].map(([entryId, raw]) => ({ entryId, event: decodeStreamEvent(fieldsOf(raw).e!) }));
    // The ghost counted a first part of its batch, then died holding the rest.
    assert.equal((await handStore.apply(0, 'aggregate', 'ghost', entries.slice(0, 100), now)).applied, 100);

    const worker = createAggregateWorker(
      {
        connect: () => new Redis(REDIS_URL),
        keys: handKeys,
        store: handStore,
        logger: pino({ level: 'silent' }),
        metrics: createMetrics(),
      },
      { claimIdleMs: 200 },
    );
    await worker.start();
    try {
      await waitFor(async () => ((await redis.xpending(stream, 'aggregate')) as [number])[0] === 0, 10_000);
    } finally {
      await worker.stop();
    }
    // The whole batch delivered once more (as a consumer that never heard of the first delivery would).
    const replay = await handStore.apply(0, 'aggregate', 'ghost', entries, now);
    assert.equal(replay.applied, 0, 'nothing left pending to count');

    const w = await handStore.read(tenantA, 'redelivered', 'ONE_MINUTE', now);
    assert.equal(w.count, 300);
    assert.equal(w.sum, (299 * 300) / 2);
    assert.equal(w.min, 0);
    assert.equal(w.max, 299);
    assert.equal(w.uniqueUsers, 120);
    assert.equal(w.revision, 2, 'two batches counted: the ghost’s part and the reclaimed rest');
  });

  it('publishes at most one snapshot per channel per interval across publishers, and a final one', async () => {
    const subscriber = new Redis(REDIS_URL);
    const metrics = createMetrics();
    const feed = createLiveFeed({ publisher: redis, subscriber, keyPrefix: isolation.redisKeyPrefix, metrics });
    const silent = pino({ level: 'silent' });
    const options = { intervalMs: 200, graceMs: 30_000 };
    // Two publishers, as two replicas would run them.
    const publishers = [1, 2].map(() =>
      createWindowPublisher({ redis, store: store(options.graceMs), feed, logger: silent, metrics }, options),
    );
    const window = { tenantId: tenantA, type: 'throttled', window: 'ONE_HOUR' as const, start: hourStart };
    const received: { revision: number; final: boolean }[] = [];
    const iterator = feed.iterate<{ revision: number; final: boolean }>(
      feed.channels.window(tenantA, 'ONE_HOUR', 'throttled'),
      { keep: 'latest' },
    );
    void (async () => {
      for await (const s of iterator) received.push(s);
    })();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const started = Date.now();
    while (Date.now() - started < 1_000) {
      for (const p of publishers) p.touched([window]);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    const published = (await metrics.registry.getSingleMetricAsString('window_snapshots_published_total')).match(
      /window_snapshots_published_total (\d+)/,
    );
    const n = Number(published![1]);
    // 1.5 s of touches every 5 ms from two publishers: about one per 200 ms, leading and trailing.
    assert.ok(n >= 4 && n <= 9, `${n} snapshots published`);
    assert.ok(received.length >= 1 && received.length <= n);

    // A window whose grace period has passed gets one last snapshot, final.
    const closed = {
      tenantId: tenantA,
      type: null,
      window: 'ONE_MINUTE' as const,
      start: windowStart('ONE_MINUTE', Date.now()) - 5 * 60_000,
    };
    const finals = feed.iterate<{ final: boolean }>(feed.channels.window(tenantA, 'ONE_MINUTE', null), {
      keep: 'latest',
    });
    const first = finals.next();
    await new Promise((resolve) => setTimeout(resolve, 100));
    for (const p of publishers) p.touched([closed]);
    assert.equal(((await first).value as { final: boolean }).final, true);
    for (const p of publishers) p.stop();
    await iterator.return!();
    await finals.return!();
    subscriber.disconnect();
  });
});
