import type { Redis } from '../../redis/create-redis.js';
import { costBudgetKey } from '../../redis/keys.js';

/**
 * A token bucket per key, in one Redis hash, changed only by this script so that every replica
 * sees one budget. The clock is Redis' own (TIME), so replicas with drifting clocks agree.
 * A positive ARGV[3] is a charge: taken whole when the bucket holds enough, otherwise nothing is
 * taken and the wait until it will hold enough is answered. Zero reads; a negative value refunds
 * (never above the capacity).
 *
 * KEYS[1] = the bucket. ARGV[1] = capacity, ARGV[2] = points restored per millisecond,
 * ARGV[3] = points to take. Returns { 1 taken | 0 refused, points left (string: Lua would
 * truncate a float reply), ms until the charge would fit }.
 */
const BUCKET_LUA = `
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'p', 't')
local points = capacity
if state[1] then
  points = math.min(capacity, tonumber(state[1]) + math.max(0, now - tonumber(state[2])) * rate)
end
local taken = 1
local wait = 0
if cost > points then
  taken = 0
  wait = math.ceil((cost - points) / rate)
else
  points = math.min(capacity, points - cost)
end
redis.call('HSET', KEYS[1], 'p', tostring(points), 't', now)
-- A bucket that has refilled is the same as no bucket: let Redis forget it then.
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - points) / rate) + 1000)
return { taken, tostring(points), wait }
`;

type WithBucket = {
  agwCostBucket(key: string, capacity: string, rate: string, cost: string): Promise<[number, string, number]>;
};

export interface BudgetState {
  /** Whether the charge was taken (always true for reads and refunds). */
  readonly taken: boolean;
  /** Points left after this call, rounded down. */
  readonly currentlyAvailable: number;
  /** When refused: milliseconds until the bucket holds enough for the charge. */
  readonly retryAfterMs: number;
}

export interface CostBudgetOptions {
  /** Points a full bucket holds (COST_BUDGET_CAPACITY, 20,000). */
  readonly capacity: number;
  /** Points restored per minute (COST_BUDGET_RESTORE_PER_MINUTE, 20,000). */
  readonly restorePerMinute: number;
  /** Largest cost of one operation for a key without its own maximum (COST_MAX_PER_OPERATION, 1,000). */
  readonly maxPerOperation: number;
}

/** What `viewer { costBudget }` and `extensions.cost` report about a key's budget. */
export interface CostBudgetStatus {
  readonly maximumAvailable: number;
  readonly currentlyAvailable: number;
  readonly restoreRate: number;
  readonly maxOperationCost: number;
}

/** The per-key budgets, shared by all replicas through Redis. Every call is one round trip. */
export function createCostBudget(redis: Redis, keyPrefix: string, options: CostBudgetOptions) {
  redis.defineCommand('agwCostBucket', { numberOfKeys: 1, lua: BUCKET_LUA });
  const client = redis as Redis & WithBucket;
  const perMs = options.restorePerMinute / 60_000;

  async function call(keyId: string, points: number): Promise<BudgetState> {
    const [taken, left, wait] = await client.agwCostBucket(
      costBudgetKey(keyPrefix, keyId),
      String(options.capacity),
      String(perMs),
      String(points),
    );
    return { taken: taken === 1, currentlyAvailable: Math.floor(Number(left)), retryAfterMs: Number(wait) };
  }

  // The key's own maximum, else the default; never above the capacity, since a charge larger than
  // a full bucket could never be taken.
  const maxOperationCostOf = (key: { maxOperationCost?: number | null }) =>
    Math.min(key.maxOperationCost ?? options.maxPerOperation, options.capacity);
  // Points restored per second, as Shopify reports `restoreRate`.
  const restoreRate = Math.round((options.restorePerMinute / 60) * 100) / 100;

  return {
    capacity: options.capacity,
    restoreRate,
    maxOperationCostOf,
    /** Takes `points` when the bucket holds them; otherwise takes nothing and says when it will. */
    charge: (keyId: string, points: number) => call(keyId, Math.max(0, points)),
    /** Gives back points charged but not used. */
    refund: (keyId: string, points: number) => call(keyId, -Math.max(0, points)),
    /** The bucket as it is now. */
    peek: (keyId: string) => call(keyId, 0),
    /** The key's budget as `viewer { costBudget }` shows it. */
    async status(key: { keyId: string; maxOperationCost?: number | null }): Promise<CostBudgetStatus> {
      const { currentlyAvailable } = await call(key.keyId, 0);
      return {
        maximumAvailable: options.capacity,
        currentlyAvailable,
        restoreRate,
        maxOperationCost: maxOperationCostOf(key),
      };
    },
  };
}

export type CostBudget = ReturnType<typeof createCostBudget>;
