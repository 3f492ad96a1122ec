import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { Redis } from 'ioredis';
import type { Redis as GatewayRedis } from '../../src/redis/create-redis.js';
import type { StreamKeys } from '../../src/redis/keys.js';

/** The services the tests use; CI and developers run them on the standard local ports. */
export const POSTGRES_URL = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/**
 * A database and a Redis key prefix of a test file's own, so files run in parallel and reruns
 * start clean. The database is created by the gateway under test (DATABASE_CREATE_IF_MISSING);
 * `cleanup` drops it and deletes every Redis key under the prefix.
 */
export function isolatedEnv(label: string) {
  const id = `${label.replace(/[^a-z0-9]/gi, '_').toLowerCase()}_${process.pid}_${randomBytes(3).toString('hex')}`;
  const url = new URL(POSTGRES_URL);
  url.pathname = `/agw_test_${id}`;
  const databaseUrl = url.toString();
  const redisKeyPrefix = `agw-test:${id}:`;

  return {
    databaseUrl,
    redisKeyPrefix,
    /** Environment for a gateway (in-process or spawned) that uses this isolation. */
    env(overrides: Record<string, string | undefined> = {}): Record<string, string | undefined> {
      return {
        NODE_ENV: 'test',
        HOST: '127.0.0.1',
        PORT: '0',
        DATABASE_URL: databaseUrl,
        REDIS_URL,
        REDIS_KEY_PREFIX: redisKeyPrefix,
        LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
        ...overrides,
      };
    },
    async cleanup(): Promise<void> {
      await dropDatabase(databaseUrl);
      await deleteRedisKeys(redisKeyPrefix);
      await sweepAbandoned();
    },
  };
}

/**
 * Drops test databases and keys left by runs that were killed before their cleanup ran. Names
 * carry the creating process id; a name whose process is gone is abandoned.
 */
async function sweepAbandoned(): Promise<void> {
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  try {
    // Never one with a live connection, whatever its name says.
    const { rows } = await admin.query<{ datname: string }>(
      `SELECT d.datname FROM pg_database d
       WHERE d.datname LIKE 'agw\\_test\\_%'
         AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)`,
    );
    for (const { datname } of rows) {
      const pid = Number(/_(\d+)_[0-9a-f]{6}$/.exec(datname)?.[1]);
      if (!pid || isAlive(pid)) continue;
      await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(datname)} WITH (FORCE)`).catch(() => undefined);
      await deleteRedisKeys(`agw-test:${datname.slice('agw_test_'.length)}:`);
    }
  } finally {
    await admin.end();
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A pool for a test's own queries. Its error listener keeps an idle connection that is
 * terminated at teardown (DROP DATABASE … WITH (FORCE)) from crashing the test process; a failed
 * query still rejects and fails its test.
 */
export function testPool(connectionString: string, max = 3): pg.Pool {
  const pool = new pg.Pool({ connectionString, max, options: '-c timezone=UTC' });
  pool.on('error', () => undefined);
  return pool;
}

export async function dropDatabase(databaseUrl: string): Promise<void> {
  const name = decodeURIComponent(new URL(databaseUrl).pathname.slice(1));
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}

export async function deleteRedisKeys(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      if (keys.length) await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

/** Polls `probe` until it returns true; resolves with the time it took, rejects after `timeoutMs`. */
export async function waitFor(probe: () => Promise<boolean>, timeoutMs: number, intervalMs = 50): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await probe()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Every entry of every stream partition stored by the persist group and counted by the aggregate
 * group: both groups exist, with nothing pending and nothing unread.
 */
export async function streamGroupsSettled(redis: GatewayRedis, keys: StreamKeys): Promise<boolean> {
  for (let p = 0; p < keys.partitions; p++) {
    const groups = (await redis.xinfo('GROUPS', keys.stream(p)).catch(() => [])) as unknown[][];
    if (groups.length < 2) return false;
    for (const flat of groups) {
      const info: Record<string, unknown> = {};
      for (let i = 0; i < flat.length; i += 2) info[String(flat[i])] = flat[i + 1];
      if (Number(info.pending) !== 0 || Number(info.lag) !== 0) return false;
    }
  }
  return true;
}
