import { Redis } from 'ioredis';
import type { Config } from '../config/config.js';
import type { Logger } from '../observability/logger.js';

export type { Redis } from 'ioredis';

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

/**
 * One ioredis connection. Pub/sub subscribers and blocking stream reads each need a connection of
 * their own (a subscribed connection accepts no other commands; a blocking read holds its socket).
 */
export function createRedis(config: Pick<Config, 'redis'>, logger: Logger, options: RedisClientOptions): Redis {
  const log = logger.child({ redis: options.name });
  const client = new Redis(config.redis.url, {
    connectionName: `agw-${options.name}`,
    enableOfflineQueue: options.queueWhileDisconnected ?? false,
    maxRetriesPerRequest: options.queueWhileDisconnected ? null : 1,
    connectTimeout: 2_000,
    retryStrategy: (attempt) => Math.min(100 * 2 ** Math.min(attempt, 5), 2_000),
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
