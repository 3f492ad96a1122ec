import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../../src/config/config.js';

describe('loadConfig', () => {
  it('gives the documented local defaults for an empty environment', () => {
    const config = loadConfig({});
    assert.equal(config.http.port, 4000);
    assert.equal(config.http.host, '127.0.0.1');
    assert.equal(config.database.url, 'postgres://postgres@127.0.0.1:5432/analytics');
    assert.equal(config.redis.url, 'redis://127.0.0.1:6379');
    assert.equal(config.database.migrateOnStart, true);
    assert.equal(config.database.createIfMissing, true);
    assert.equal(config.graphql.introspection, true);
    assert.equal(config.graphql.landingPage, true);
    assert.equal(config.http.maxBodyBytes, 5 * 1024 * 1024);
    assert.equal(config.http.shutdownGraceMs, 10_000);
    assert.equal(config.auth.bootstrapApiKey, undefined);
    assert.ok(Object.isFrozen(config) && Object.isFrozen(config.http), 'the config is frozen');
  });

  it('turns introspection and the landing page off in production unless asked', () => {
    assert.equal(loadConfig({ NODE_ENV: 'production' }).graphql.introspection, false);
    assert.equal(loadConfig({ NODE_ENV: 'production' }).graphql.landingPage, false);
    assert.equal(loadConfig({ NODE_ENV: 'production', INTROSPECTION: 'true' }).graphql.introspection, true);
  });

  it('parses booleans and numbers, and treats an empty variable as unset', () => {
    const config = loadConfig({ MIGRATE_ON_START: 'off', PORT: '8080', DATABASE_POOL_MAX: '', AUTH_CACHE_TTL_MS: '0' });
    assert.equal(config.database.migrateOnStart, false);
    assert.equal(config.http.port, 8080);
    assert.equal(config.database.poolMax, 10);
    assert.equal(config.auth.cacheTtlMs, 0);
  });

  it('names every invalid variable at once, without echoing values', () => {
    let error: unknown;
    try {
      loadConfig({ PORT: 'eighty', DATABASE_URL: 'mysql://x/y', LOG_LEVEL: 'loud', MIGRATE_ON_START: 'maybe' });
    } catch (err) {
      error = err;
    }
    assert.ok(error instanceof ConfigError);
    const names = error.problems.map((p) => p.split(':')[0]);
    assert.deepEqual(names.sort(), ['DATABASE_URL', 'LOG_LEVEL', 'MIGRATE_ON_START', 'PORT']);
    assert.match(error.message, /PORT/);
    assert.doesNotMatch(error.message, /eighty|mysql/);
  });

  it('reads REDIS_CLUSTER_NODES as a list of host and port, and refuses anything else', () => {
    assert.equal(loadConfig({}).redis.clusterNodes, undefined);
    assert.deepEqual(loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:7000,redis-b.internal:7001' }).redis.clusterNodes, [
      { host: '10.0.0.1', port: 7000 },
      { host: 'redis-b.internal', port: 7001 },
    ]);
    for (const bad of ['10.0.0.1', '10.0.0.1:7000,', 'redis://10.0.0.1:7000', 'a:0', 'a:70000', 'a b:7000']) {
      assert.throws(() => loadConfig({ REDIS_CLUSTER_NODES: bad }), /REDIS_CLUSTER_NODES/, bad);
    }
  });

  it('refuses a key cache TTL that would break the 5 s revocation promise', () => {
    assert.throws(() => loadConfig({ AUTH_CACHE_TTL_MS: '10000' }), /AUTH_CACHE_TTL_MS/);
  });

  it('refuses a database URL without a database name, and an out-of-range port', () => {
    assert.throws(() => loadConfig({ DATABASE_URL: 'postgres://postgres@127.0.0.1:5432' }), /DATABASE_URL/);
    assert.throws(() => loadConfig({ PORT: '70000' }), /PORT/);
    assert.throws(() => loadConfig({ REDIS_URL: 'http://127.0.0.1:6379' }), /REDIS_URL/);
    // Not a URL at all: a ConfigError naming it, not a TypeError from the URL parser.
    assert.throws(
      () => loadConfig({ DATABASE_URL: 'nope', EVENT_RETENTION_DAYS: '-1' }),
      (err: Error) => {
        assert.equal(err.name, 'ConfigError');
        assert.match(err.message, /DATABASE_URL/);
        assert.match(err.message, /EVENT_RETENTION_DAYS/);
        return true;
      },
    );
  });
});
