import { Cluster, Redis as Server, type RedisOptions } from 'ioredis';
import type { Config } from '../config/config.js';
import type { Logger } from '../observability/logger.js';

/**
 * What the gateway talks to: the one server of REDIS_URL, or a Redis Cluster (REDIS_CLUSTER_NODES).
 * Both answer the same commands. On a Cluster a command, script, MULTI or pipeline may name keys of
 * one slot only, which the hash tags of src/redis/keys.ts arrange (src/redis/pipeline-per-slot.ts
 * splits a pipeline that spans tags), and a keyless command (PING, PUBLISH, SUBSCRIBE) goes to any
 * node; the gateway sends no SCAN, KEYS or INFO, which would see one node only.
 */
export type Redis = Server | Cluster;

export interface RedisClientOptions {
  /** Names the connection in logs and in Redis' CLIENT LIST. */
  readonly name: string;
  /**
   * Queue commands while disconnected instead of failing them at once. Off for the request path:
   * a caller must learn immediately that Redis is gone (and fall back, or answer 503) rather than
   * wait for a reconnect. Subscriber connections keep it on so SUBSCRIBE survives a restart.
   */
  readonly queueWhileDisconnected?: boolean;
}

const retryDelay = (attempt: number) => Math.min(100 * 2 ** Math.min(attempt, 5), 2_000);

/**
 * One client: a connection, or on a Cluster one connection per node. Pub/sub subscribers and
 * blocking stream reads each need a client of their own (a subscribed connection accepts no other
 * commands; a blocking read holds its socket).
 */
export function createRedis(config: Pick<Config, 'redis'>, logger: Logger, options: RedisClientOptions): Redis {
  const log = logger.child({ redis: options.name });
  const queue = options.queueWhileDisconnected ?? false;
  const connection = {
    connectionName: `agw-${options.name}`,
    maxRetriesPerRequest: queue ? null : 1,
    connectTimeout: 2_000,
  } satisfies RedisOptions;
  const nodes = config.redis.clusterNodes;
  const client: Redis = nodes
    ? new Cluster(
        nodes.map((n) => ({ host: n.host, port: n.port })),
        {
          enableOfflineQueue: queue,
          clusterRetryStrategy: retryDelay,
          lazyConnect: false,
          // The slot map is refreshed on MOVED as well; this bounds how long a quiet client keeps a
          // stale one after a resharding or failover.
          slotsRefreshInterval: 5_000,
          redisOptions: { ...connection, ...credentialsOf(config.redis.url) },
        },
      )
    : new Server(config.redis.url, {
        ...connection,
        enableOfflineQueue: queue,
        retryStrategy: retryDelay,
        lazyConnect: false,
      });
  // Reconnection errors repeat every retry; one line per outage is enough for an operator.
  let down = false;
  client.on('error', (err) => {
    if (down) return;
    down = true;
    log.warn({ err }, 'redis connection failed; reconnecting in the background');
  });
  client.on('ready', () => {
    if (down) log.info('redis connection restored');
    down = false;
  });
  return client;
}

/** The user, password and TLS of REDIS_URL, which every node of a Cluster is reached with. */
function credentialsOf(url: string): Pick<RedisOptions, 'username' | 'password' | 'tls'> {
  const parsed = new URL(url);
  return {
    ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
    ...(parsed.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

export async function closeRedis(client: Redis): Promise<void> {
  // QUIT waits for replies already in flight; when the connection is down it cannot be sent.
  if (client.status === 'ready') await client.quit().catch(() => client.disconnect());
  else client.disconnect();
}

/** Resolves once the client is connected, or rejects after `timeoutMs` (for one-shot tools). */
export async function waitForReady(client: Redis, timeoutMs: number): Promise<void> {
  if (client.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('ready', onReady);
      reject(new Error(`redis not ready within ${timeoutMs} ms`));
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    client.once('ready', onReady);
  });
}
