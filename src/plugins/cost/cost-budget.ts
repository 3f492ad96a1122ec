import type { Redis } from '../../redis/create-redis.js';
import { costBudgetKey } from '../../redis/keys.js';

/**
 * A token bucket per key, in one Redis hash, changed only by this script so that every replica
 * sees one budget. The clock is Redis' own (TIME), so replicas with drifting clocks agree.
 * It takes at least ARGV[3] and up to ARGV[4] points, as many as the bucket holds: a charge takes
 * exactly its cost (least = most) whole or not at all, a lease its cost plus what the bucket can
 * spare of the lease; when the bucket holds less than the least, nothing is taken and the wait
 * until it will is answered. Zero reads; a negative value refunds (never above the capacity).
 *
 * KEYS[1] = the bucket. ARGV[1] = capacity, ARGV[2] = points restored per millisecond,
 * ARGV[3] = least, ARGV[4] = most points to take. Returns { 1 taken | 0 refused, points left
 * (string: Lua would truncate a float reply), ms until the least would fit, points taken (string) }.
 */
const BUCKET_LUA = `
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local least = tonumber(ARGV[3])
local most = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'p', 't')
local points = capacity
if state[1] then
  points = math.min(capacity, tonumber(state[1]) + math.max(0, now - tonumber(state[2])) * rate)
end
local taken = 0
local wait = 0
local got = 0
if least > points then
  wait = math.ceil((least - points) / rate)
else
  taken = 1
  got = math.min(points, most)
  points = math.min(capacity, points - got)
end
redis.call('HSET', KEYS[1], 'p', tostring(points), 't', now)
-- A bucket that has refilled is the same as no bucket: let Redis forget it then.
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - points) / rate) + 1000)
return { taken, tostring(points), wait, tostring(got) }
`;

type WithBucket = {
  agwCostBucket(
    key: string,
    capacity: string,
    rate: string,
    least: string,
    most: string,
  ): Promise<[number, string, number, string]>;
};

/** Points one replica holds for a key, taken from the shared bucket ahead of use. */
interface Lease {
  points: number;
  /** The shared bucket as the last call to Redis left it. */
  bucketSeen: number;
  /** Unused points go back to the shared bucket after this. */
  expiresAt: number;
}

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
  /**
   * Points a replica takes from the shared bucket beyond what an operation needs, to answer the
   * next operations of that key without a round trip (COST_BUDGET_LEASE_POINTS, 200; never more
   * than a tenth of the capacity). 0: every charge and refund is a call to Redis.
   */
  readonly leasePoints?: number;
  /** How long unused leased points stay with a replica before they go back (COST_BUDGET_LEASE_MS, 1 s). */
  readonly leaseMs?: number;
}

/** What `viewer { costBudget }` and `extensions.cost` report about a key's budget. */
export interface CostBudgetStatus {
  readonly maximumAvailable: number;
  readonly currentlyAvailable: number;
  readonly restoreRate: number;
  readonly maxOperationCost: number;
}

/**
 * The per-key budgets, shared by all replicas through Redis. With leasing (the default), a
 * replica takes an operation's points plus a lease from the shared bucket in one call and answers
 * the key's next operations from the lease, and refunds into it, without a round trip; what is
 * unused goes back when the lease ends. A replica only ever spends points it has taken from the
 * shared bucket, so leasing never lets a key spend more than the bucket gives: the overspend
 * across replicas is zero. Its price is the other way round: up to the lease size per replica
 * (and per key) may sit unused with one replica for up to the lease time, while another replica
 * refuses that key for want of them.
 */
export function createCostBudget(redis: Redis, keyPrefix: string, options: CostBudgetOptions) {
  redis.defineCommand('agwCostBucket', { numberOfKeys: 1, lua: BUCKET_LUA });
  const client = redis as Redis & WithBucket;
  const perMs = options.restorePerMinute / 60_000;
  const leasePoints = Math.min(options.leasePoints ?? 200, Math.floor(options.capacity / 10));
  const leaseMs = options.leaseMs ?? 1_000;
  const leases = new Map<string, Lease>();
  const bucketKey = (keyId: string) => costBudgetKey(keyPrefix, keyId);
  let timer: NodeJS.Timeout | undefined;

  async function call(keyId: string, points: number): Promise<BudgetState> {
    const [taken, left, wait] = await client.agwCostBucket(
      bucketKey(keyId),
      String(options.capacity),
      String(perMs),
      String(points),
      String(points),
    );
    return { taken: taken === 1, currentlyAvailable: Math.floor(Number(left)), retryAfterMs: Number(wait) };
  }

  /** What this replica can spend for the key: the shared bucket as last seen, plus its lease. */
  const available = (lease: Lease) => Math.floor(lease.bucketSeen + lease.points);

  async function charge(keyId: string, cost: number): Promise<BudgetState> {
    if (leasePoints === 0) return call(keyId, cost);
    let lease = leases.get(keyId);
    if (lease && lease.points >= cost) {
      lease.points -= cost;
      return { taken: true, currentlyAvailable: available(lease), retryAfterMs: 0 };
    }
    // What the lease holds counts toward the charge; taken out before the await, so concurrent
    // charges of the key never spend it twice.
    const held = lease?.points ?? 0;
    if (lease) lease.points = 0;
    const need = cost - held;
    let reply: [number, string, number, string];
    try {
      reply = await client.agwCostBucket(
        bucketKey(keyId),
        String(options.capacity),
        String(perMs),
        String(need),
        String(need + leasePoints),
      );
    } catch (err) {
      if (lease) lease.points += held;
      throw err;
    }
    const [taken, left, wait, got] = reply;
    lease = leases.get(keyId);
    if (!lease) leases.set(keyId, (lease = { points: 0, bucketSeen: 0, expiresAt: 0 }));
    lease.bucketSeen = Number(left);
    lease.expiresAt = Date.now() + leaseMs;
    if (taken !== 1) {
      lease.points += held;
      return { taken: false, currentlyAvailable: available(lease), retryAfterMs: Number(wait) };
    }
    lease.points += Number(got) - need;
    return { taken: true, currentlyAvailable: available(lease), retryAfterMs: 0 };
  }

  async function refund(keyId: string, points: number): Promise<BudgetState> {
    const lease = leasePoints === 0 ? undefined : leases.get(keyId);
    if (!lease) return call(keyId, -points);
    lease.points += points;
    // More than a lease's worth goes back at once: a large over-estimate should not sit here.
    const excess = lease.points - leasePoints;
    if (excess <= 0) return { taken: true, currentlyAvailable: available(lease), retryAfterMs: 0 };
    lease.points = leasePoints;
    try {
      const state = await call(keyId, -excess);
      lease.bucketSeen = state.currentlyAvailable;
    } catch (err) {
      lease.points += excess;
      throw err;
    }
    return { taken: true, currentlyAvailable: available(lease), retryAfterMs: 0 };
  }

  async function peek(keyId: string): Promise<BudgetState> {
    const state = await call(keyId, 0);
    const lease = leases.get(keyId);
    if (!lease) return state;
    lease.bucketSeen = state.currentlyAvailable;
    return { ...state, currentlyAvailable: available(lease) };
  }

  /** Gives back what ended leases did not use (every lease when `all`). */
  async function returnLeases(all: boolean): Promise<void> {
    const now = Date.now();
    const ended = [...leases].filter(([, lease]) => all || lease.expiresAt <= now);
    await Promise.all(
      ended.map(async ([keyId, lease]) => {
        leases.delete(keyId);
        if (lease.points <= 0) return;
        const points = lease.points;
        lease.points = 0;
        // Lost with Redis unreachable: the bucket refills on its own, so this only delays points.
        await call(keyId, -points).catch(() => undefined);
      }),
    );
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
    leasePoints,
    maxOperationCostOf,
    /** Takes `points` when the bucket holds them; otherwise takes nothing and says when it will. */
    charge: (keyId: string, points: number) => charge(keyId, Math.max(0, points)),
    /** Gives back points charged but not used. */
    refund: (keyId: string, points: number) => refund(keyId, Math.max(0, points)),
    /** The bucket as it is now, with what this replica holds of it. */
    peek,
    /** The key's budget as `viewer { costBudget }` shows it. */
    async status(key: { keyId: string; maxOperationCost?: number | null }): Promise<CostBudgetStatus> {
      const { currentlyAvailable } = await peek(key.keyId);
      return {
        maximumAvailable: options.capacity,
        currentlyAvailable,
        restoreRate,
        maxOperationCost: maxOperationCostOf(key),
      };
    },
    /** Starts giving back ended leases. */
    async start(): Promise<void> {
      if (leasePoints === 0 || timer) return;
      timer = setInterval(() => void returnLeases(false), leaseMs);
      timer.unref();
    },
    /** Gives back every lease; after it, charges still work (without leases being returned). */
    async stop(): Promise<void> {
      clearInterval(timer);
      timer = undefined;
      await returnLeases(true);
    },
  };
}

export type CostBudget = ReturnType<typeof createCostBudget>;
