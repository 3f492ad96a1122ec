import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ApolloServer, HeaderMap } from '@apollo/server';
import { ApolloServerPluginCacheControlDisabled } from '@apollo/server/plugin/disabled';
import { buildSchema } from 'graphql';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import type { GatewayContext } from '../../../src/app/context.js';
import { createMetrics } from '../../../src/observability/metrics.js';
import { responseCachePlugin } from '../../../src/plugins/response-cache.plugin.js';
import { closedPort } from '../../helpers/tcp-proxy.js';
import { REDIS_URL, deleteRedisKeys, isolatedEnv } from '../../helpers/test-env.js';

/**
 * The plugin alone under Apollo's own HTTP entry point, with no web framework in between: the
 * status and headers it sets are what any integration (Express, Fastify) writes out.
 */
describe('response cache plugin, framework-independent', () => {
  const { redisKeyPrefix } = isolatedEnv('response_cache_http');
  const redis = new Redis(REDIS_URL);
  let calls = 0;
  const schema = buildSchema(`type Query { total(days: Int!): Int! other: Int! }`);
  const root = {
    total: ({ days }: { days: number }) => {
      calls++;
      return days * 10;
    },
    other: () => 1,
  };
  const metrics = createMetrics();
  const serverWith = (client: Redis) =>
    new ApolloServer<GatewayContext>({
      schema,
      rootValue: root,
      plugins: [
        // As in the gateway (app.ts): the only cache headers are this plugin's.
        ApolloServerPluginCacheControlDisabled(),
        responseCachePlugin(
          {
            redis: client,
            metrics,
            logger: pino({ level: 'silent' }),
            generationKey: (tenantId) => `${redisKeyPrefix}gen:{${tenantId}}`,
          },
          {
            keyPrefix: redisKeyPrefix,
            fields: { total: { scope: 'analytics:read', maxAgeS: (args) => (Number(args.days) > 0 ? 60 : null) } },
          },
        ),
      ],
    });
  const apollo = serverWith(redis);
  const context = (tenantId: string): GatewayContext =>
    ({
      viewer: { tenantId, tenantSlug: tenantId, keyId: 'k', keyName: 'k', keyPrefix: 'k', scopes: ['analytics:read'] },
      requestId: 'r',
      logger: pino({ level: 'silent' }),
    }) as unknown as GatewayContext;
  const run = (
    method: 'GET' | 'POST',
    query: string,
    headers: Record<string, string> = {},
    tenant = 't1',
    server = apollo,
  ) =>
    server.executeHTTPGraphQLRequest({
      httpGraphQLRequest: {
        method,
        headers: new HeaderMap(
          Object.entries({ 'content-type': 'application/json', 'apollo-require-preflight': '1', ...headers }),
        ),
        search: method === 'GET' ? `?query=${encodeURIComponent(query)}` : '',
        body: method === 'POST' ? { query } : undefined,
      },
      context: async () => context(tenant),
    });
  const text = async (r: Awaited<ReturnType<typeof run>>) =>
    r.body.kind === 'complete' ? r.body.string : assert.fail('not a complete body');

  before(() => apollo.start());
  after(async () => {
    await apollo.stop();
    redis.disconnect();
    await deleteRedisKeys(redisKeyPrefix);
  });

  it('sets Cache-Control and ETag on GET, answers 304 on If-None-Match, and executes once', async () => {
    const first = await run('GET', '{ total(days: 3) }');
    assert.equal(first.status ?? 200, 200);
    assert.equal(await text(first), '{"data":{"total":30}}\n');
    assert.equal(first.headers.get('cache-control'), 'private, max-age=60');
    const etag = first.headers.get('etag')!;
    assert.match(etag, /^W\/"[A-Za-z0-9_-]+"$/);
    assert.equal(calls, 1);

    const second = await run('GET', '{ total(days: 3) }', { 'if-none-match': etag });
    assert.equal(second.status, 304);
    assert.equal(second.headers.get('etag'), etag);
    assert.equal(calls, 1, 'the second answer executed');

    // The generation moves: the stored answer is stale, the same data gives the same ETag.
    await redis.incr(`${redisKeyPrefix}gen:{t1}`);
    const third = await run('GET', '{ total(days: 3) }', { 'if-none-match': etag });
    assert.equal(third.status, 304);
    assert.equal(calls, 2);

    // Another tenant: its own execution.
    await run('GET', '{ total(days: 3) }', {}, 't2');
    assert.equal(calls, 3);
  });

  it('does not cache errors, invalid arguments or other root fields, and leaves POST without cache headers', async () => {
    const before = calls;
    for (let i = 0; i < 2; i++) {
      const r = await run('GET', '{ total(days: 0) }');
      assert.equal(r.headers.get('cache-control'), 'no-store');
      assert.equal(r.headers.get('etag'), undefined);
      const mixed = await run('GET', '{ total(days: 4) other }');
      assert.equal(mixed.headers.get('cache-control'), 'no-store');
    }
    assert.equal(calls, before + 4);
    const posted = await run('POST', '{ total(days: 5) }');
    assert.equal(posted.headers.get('cache-control'), undefined);
    assert.equal(posted.headers.get('etag'), undefined);
    await run('POST', '{ total(days: 5) }');
    assert.equal(calls, before + 5, 'a POST repeat is answered from the cache too');
  });

  it('executes when Redis fails, and counts the error', async () => {
    const dead = new Redis({
      port: await closedPort(),
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      lazyConnect: true,
    });
    dead.on('error', () => undefined);
    const server = serverWith(dead);
    await server.start();
    try {
      const before = calls;
      for (let i = 0; i < 2; i++) {
        const r = await run('GET', '{ total(days: 2) }', {}, 't1', server);
        assert.equal(await text(r), '{"data":{"total":20}}\n');
        assert.equal(r.headers.get('cache-control'), 'no-store');
      }
      assert.equal(calls, before + 2);
      const errors = (await metrics.responseCacheRequests.get()).values.find((v) => v.labels.result === 'error');
      assert.equal(errors?.value, 2);
    } finally {
      await server.stop();
      dead.disconnect();
    }
  });
});
