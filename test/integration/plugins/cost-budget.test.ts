import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { createCostBudget } from '../../../src/plugins/cost/cost-budget.js';
import { REDIS_URL, deleteRedisKeys, isolatedEnv } from '../../helpers/test-env.js';

describe('cost budget (token bucket in Redis)', () => {
  const { redisKeyPrefix } = isolatedEnv('cost_budget');
  const clients = [new Redis(REDIS_URL), new Redis(REDIS_URL)];
  // 1 point a minute: nothing measurable refills while a test runs.
  const options = { capacity: 100, restorePerMinute: 1, maxPerOperation: 1000 };
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
