import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { createCostBudget } from '../../../src/plugins/cost/cost-budget.js';
import { createTcpProxy } from '../../helpers/tcp-proxy.js';
import { REDIS_URL, deleteRedisKeys, isolatedEnv, waitFor } from '../../helpers/test-env.js';

describe('cost budget (token bucket in Redis)', () => {
  const { redisKeyPrefix } = isolatedEnv('cost_budget');
  const clients = [new Redis(REDIS_URL), new Redis(REDIS_URL)];
  // 1 point a minute: nothing measurable refills while a test runs.
  // No leases here: these tests are of the shared bucket itself (leases are tested below).
  const options = { capacity: 100, restorePerMinute: 1, maxPerOperation: 1000, leasePoints: 0 };
  const [a, b] = clients.map((c) => createCostBudget(c, redisKeyPrefix, options));
  after(async () => {
    for (const c of clients) c.disconnect();
    await deleteRedisKeys(redisKeyPrefix);
  });

  it('starts full, takes a charge whole or not at all, and says when it would fit', async () => {
    assert.equal((await a!.peek('k1')).currentlyAvailable, 100);
    assert.deepEqual(await a!.charge('k1', 70), { taken: true, currentlyAvailable: 30, retryAfterMs: 0 });
    const refused = await b!.charge('k1', 50);
    assert.equal(refused.taken, false);
    assert.equal(refused.currentlyAvailable, 30, 'nothing taken');
    // 20 points at 1 a minute.
    assert.ok(refused.retryAfterMs > 19 * 60_000 && refused.retryAfterMs <= 20 * 60_000, String(refused.retryAfterMs));
  });

  it('refunds without ever exceeding the capacity', async () => {
    await a!.charge('k2', 40);
    assert.equal((await b!.refund('k2', 15)).currentlyAvailable, 75);
    assert.equal((await b!.refund('k2', 500)).currentlyAvailable, 100);
  });

  it('never overdraws under concurrent charges from two clients', async () => {
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? a! : b!).charge('k3', 7)));
    assert.equal(results.filter((r) => r.taken).length, 14, '14 × 7 = 98 of 100 points');
    assert.equal((await a!.peek('k3')).currentlyAvailable, 2);
  });

  it("caps a key's own maximum at the capacity, and reports the restore rate per second", () => {
    assert.equal(a!.maxOperationCostOf({ maxOperationCost: null }), 100);
    assert.equal(a!.maxOperationCostOf({ maxOperationCost: 40 }), 40);
    assert.equal(a!.restoreRate, 0.02);
  });

  it('keeps a bucket only while it is not full', async () => {
    await a!.charge('k4', 1);
    const ttl = await clients[0]!.pttl(`${redisKeyPrefix}cost:budget:k4`);
    // One point at 1 a minute, plus a second of slack.
    assert.ok(ttl > 55_000 && ttl <= 61_000, String(ttl));
  });
});

describe('cost budget leases (points a replica holds ahead of use)', () => {
  const { redisKeyPrefix } = isolatedEnv('cost_lease');
  const clients = [new Redis(REDIS_URL), new Redis(REDIS_URL)];
  // 1 point a minute: nothing measurable refills while a test runs. Leases of 50 points, 200 ms.
  const options = { capacity: 1000, restorePerMinute: 1, maxPerOperation: 1000, leasePoints: 50, leaseMs: 200 };
  const [a, b] = clients.map((c) => createCostBudget(c, redisKeyPrefix, options));
  // Rounded down: a point a minute refills fractions of a point between calls.
  const bucket = async (keyId: string) =>
    Math.floor(Number((await clients[1]!.hget(`${redisKeyPrefix}cost:budget:${keyId}`, 'p')) ?? options.capacity));
  after(async () => {
    await a!.stop();
    await b!.stop();
    for (const c of clients) c.disconnect();
    await deleteRedisKeys(redisKeyPrefix);
  });

  it('answers the next charges and refunds from the lease, without a call to Redis', async () => {
    // A client of its own behind a proxy that counts the bytes it sends.
    let sent = 0;
    const proxy = await createTcpProxy(Number(new URL(REDIS_URL).port || 6379), '127.0.0.1', () => (chunk) => {
      sent += chunk.length;
    });
    const redis = new Redis({ port: proxy.port, host: '127.0.0.1', lazyConnect: true });
    const c = createCostBudget(redis, redisKeyPrefix, options);
    try {
      await redis.connect();
      const first = await c.charge('l1', 10);
      assert.deepEqual(first, { taken: true, currentlyAvailable: 990, retryAfterMs: 0 });
      assert.equal(await bucket('l1'), 940, 'the charge and a lease of 50 taken in one call');
      const before = sent;
      assert.ok(before > 0, 'the proxy sees the calls that are made');
      for (let i = 0; i < 5; i++) assert.equal((await c.charge('l1', 10)).taken, true);
      assert.equal((await c.refund('l1', 5)).currentlyAvailable, 945);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(sent, before, 'five charges and a refund sent nothing');
      assert.equal(await bucket('l1'), 940);
      // The lease ran out (50 - 50 + 5): the next charge takes another.
      assert.equal((await c.charge('l1', 10)).currentlyAvailable, 935);
      assert.ok(sent > before);
      assert.equal(await bucket('l1'), 885);
    } finally {
      await c.stop();
      redis.disconnect();
      await proxy.close();
    }
  });

  it('never lets two replicas spend more than the shared bucket gives, and gives back what a lease did not use', async () => {
    // Both replicas charge the same key until refused: leases only move points, never make them.
    const spent = { a: 0, b: 0 };
    let refusedA = false;
    let refusedB = false;
    while (!refusedA || !refusedB) {
      const [ra, rb] = await Promise.all([a!.charge('l2', 7), b!.charge('l2', 7)]);
      if (ra.taken) spent.a += 7;
      else refusedA = true;
      if (rb.taken) spent.b += 7;
      else refusedB = true;
    }
    const total = spent.a + spent.b;
    assert.ok(total <= options.capacity, `overspend: ${total} of ${options.capacity}`);
    // What may sit unused: up to a lease (50) with each replica, plus less than one charge (7).
    assert.ok(total >= options.capacity - 2 * 50 - 7, `parked too much: spent ${total}`);
    // Once the leases have ended, their points are back in the shared bucket.
    await a!.start();
    await b!.start();
    // Fractions of a point refill between calls, and leases carry them: equal to within one point.
    const raw = async () => Number(await clients[1]!.hget(`${redisKeyPrefix}cost:budget:l2`, 'p'));
    await waitFor(async () => (await raw()) + total >= options.capacity - 1, 2_000);
    assert.ok(Math.abs((await raw()) + total - options.capacity) < 1, `${await raw()} + ${total}`);
  });

  it('spends what a lease holds while Redis is unreachable, then fails', async () => {
    const proxy = await createTcpProxy(Number(new URL(REDIS_URL).port || 6379));
    const redis = new Redis({ port: proxy.port, host: '127.0.0.1', maxRetriesPerRequest: 0, lazyConnect: true });
    const c = createCostBudget(redis, redisKeyPrefix, { ...options, leaseMs: 60_000 });
    try {
      await redis.connect();
      assert.equal((await c.charge('l3', 10)).taken, true);
      proxy.cut();
      for (let i = 0; i < 5; i++) assert.equal((await c.charge('l3', 10)).taken, true, 'from the lease');
      await assert.rejects(c.charge('l3', 10), 'the lease is spent and Redis cannot be asked');
    } finally {
      redis.disconnect();
      await proxy.close();
    }
  });
});
