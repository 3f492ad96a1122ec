import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RecordEventsDocument, ViewerDocument } from '../../generated/graphql.js';
import { startGateway, type RunningGateway } from '../../helpers/gateway.js';
import { errorCode, gql } from '../../helpers/graphql-client.js';
import { closedPort, createTcpProxy } from '../../helpers/tcp-proxy.js';
import { isolatedEnv, waitFor } from '../../helpers/test-env.js';

interface ReadyBody {
  status: string;
  failing: string[];
  checks: Record<string, { ok: boolean; response_time_ms: number; error?: string }>;
}

async function ready(url: string): Promise<{ status: number; body: ReadyBody }> {
  const response = await fetch(`${url}/ready`);
  return { status: response.status, body: (await response.json()) as ReadyBody };
}

describe('operations endpoints', () => {
  const isolation = isolatedEnv('operations');
  let gateway: RunningGateway;

  before(async () => {
    gateway = await startGateway(isolation.env({ BOOTSTRAP_API_KEY: 'ops-key', MAX_BODY_BYTES: '4096' }));
  });
  after(async () => {
    await gateway?.stop();
    await isolation.cleanup();
  });

  it('/health answers while the process serves', async () => {
    const response = await fetch(`${gateway.url}/health`);
    assert.equal(response.status, 200);
    assert.equal(((await response.json()) as { status: string }).status, 'ok');
  });

  it('/ready checks Postgres and Redis, each with its response time', async () => {
    const { status, body } = await ready(gateway.url);
    assert.equal(status, 200);
    assert.equal(body.status, 'ok');
    assert.deepEqual(body.failing, []);
    for (const name of ['postgres', 'redis']) {
      assert.equal(body.checks[name]?.ok, true);
      assert.equal(typeof body.checks[name]?.response_time_ms, 'number');
    }
  });

  it('/metrics exports default metrics and the HTTP histogram by route and status', async () => {
    await gql(gateway.url, ViewerDocument, { key: 'ops-key' });
    await fetch(`${gateway.url}/no-such-page`);
    const text = await (await fetch(`${gateway.url}/metrics`)).text();
    assert.match(text, /process_cpu_seconds_total/);
    assert.match(text, /nodejs_eventloop_lag_seconds/);
    assert.match(text, /http_request_duration_seconds_bucket\{[^}]*method="POST",route="\/graphql",status_code="200"/);
    assert.match(text, /http_request_duration_seconds_count\{method="GET",route="unmatched",status_code="404"\}/);
    assert.doesNotMatch(text, /no-such-page/);
  });

  it('echoes a given x-request-id and makes one up otherwise', async () => {
    const given = await gql(gateway.url, ViewerDocument, { key: 'ops-key', headers: { 'x-request-id': 'req-42.a' } });
    assert.equal(given.headers.get('x-request-id'), 'req-42.a');
    const made = await gql(gateway.url, ViewerDocument, {
      key: 'ops-key',
      headers: { 'x-request-id': 'bad id with spaces' },
    });
    assert.match(made.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
  });

  it('refuses a body over MAX_BODY_BYTES with 413 PAYLOAD_TOO_LARGE, and malformed JSON with 400', async () => {
    const big = await fetch(`${gateway.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer ops-key' },
      body: JSON.stringify({ query: `{ viewer { tenant } } # ${'x'.repeat(5000)}` }),
    });
    assert.equal(big.status, 413);
    assert.equal(
      ((await big.json()) as { errors: [{ extensions: { code: string } }] }).errors[0].extensions.code,
      'PAYLOAD_TOO_LARGE',
    );

    const broken = await fetch(`${gateway.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"query": ',
    });
    assert.equal(broken.status, 400);
  });

  it('blocks a cross-site GET that could be sent without a preflight (CSRF prevention)', async () => {
    const simple = await fetch(`${gateway.url}/graphql?query=${encodeURIComponent('{ viewer { tenant } }')}`, {
      headers: { authorization: 'Bearer ops-key' },
    });
    assert.equal(simple.status, 400);
    const preflighted = await fetch(`${gateway.url}/graphql?query=${encodeURIComponent('{ viewer { tenant } }')}`, {
      headers: { authorization: 'Bearer ops-key', 'apollo-require-preflight': 'true' },
    });
    assert.equal(preflighted.status, 200);
  });

  it('answers validation errors with their code and masks nothing useful from them', async () => {
    const response = await fetch(`${gateway.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer ops-key' },
      body: JSON.stringify({ query: '{ viewer { nope } }' }),
    });
    const body = (await response.json()) as { errors: [{ message: string; extensions: { code: string } }] };
    assert.equal(body.errors[0].extensions.code, 'GRAPHQL_VALIDATION_FAILED');
    assert.match(body.errors[0].message, /nope/);
  });
});

describe('production mode', () => {
  const isolation = isolatedEnv('production_mode');
  after(() => isolation.cleanup());

  const introspect = (url: string) =>
    fetch(`${url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer prod-key' },
      body: JSON.stringify({ query: '{ __schema { queryType { name } } }' }),
    }).then(async (r) => (await r.json()) as { data?: unknown; errors?: [{ message: string }] });
  const landing = (url: string) => fetch(`${url}/graphql`, { headers: { accept: 'text/html' } });

  it('turns introspection and the Sandbox landing page off in production, unless INTROSPECTION is set', async () => {
    const production = await startGateway(isolation.env({ NODE_ENV: 'production', BOOTSTRAP_API_KEY: 'prod-key' }));
    try {
      const refused = await introspect(production.url);
      assert.match(refused.errors?.[0]?.message ?? '', /introspection/i);
      const page = await landing(production.url);
      assert.doesNotMatch(await page.text(), /sandbox/i);
    } finally {
      await production.stop();
    }
    const optedIn = await startGateway(
      isolation.env({ NODE_ENV: 'production', INTROSPECTION: 'true', BOOTSTRAP_API_KEY: 'prod-key' }),
    );
    try {
      assert.deepEqual((await introspect(optedIn.url)).data, { __schema: { queryType: { name: 'Query' } } });
    } finally {
      await optedIn.stop();
    }
  });

  it('serves Apollo Sandbox at /graphql in a browser outside production', async () => {
    const development = await startGateway(isolation.env({ NODE_ENV: 'development' }));
    try {
      const page = await landing(development.url);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /sandbox/i);
    } finally {
      await development.stop();
    }
  });
});

describe('/ready with a dependency down', () => {
  const isolation = isolatedEnv('ready_down');
  after(() => isolation.cleanup());

  it('answers 200 "degraded" naming Redis when REDIS_URL points at a closed port, while GraphQL still serves', async () => {
    const gateway = await startGateway(
      isolation.env({ REDIS_URL: `redis://127.0.0.1:${await closedPort()}`, BOOTSTRAP_API_KEY: 'k' }),
    );
    try {
      const { status, body } = await ready(gateway.url);
      assert.equal(status, 200);
      assert.equal(body.status, 'degraded');
      assert.deepEqual(body.failing, ['redis']);
      assert.equal(body.checks.redis?.ok, false);
      assert.ok(body.checks.redis?.error);
      assert.equal(body.checks.postgres?.ok, true);
      assert.equal((await gql(gateway.url, ViewerDocument, { key: 'k' })).data?.viewer?.tenant, 'demo');
    } finally {
      await gateway.stop();
    }
  });

  it('stays 200 but "degraded" while Redis is cut, serving queries and ingestion, and "ok" when it returns', async () => {
    const proxy = await createTcpProxy(6379);
    const gateway = await startGateway(
      isolation.env({ REDIS_URL: `redis://127.0.0.1:${proxy.port}`, BOOTSTRAP_API_KEY: 'cut-key' }),
    );
    try {
      await waitFor(async () => (await ready(gateway.url)).body.status === 'ok', 5_000);
      proxy.cut();
      await waitFor(async () => (await ready(gateway.url)).body.status === 'degraded', 5_000);
      const degraded = await ready(gateway.url);
      assert.equal(degraded.status, 200);
      assert.deepEqual(degraded.body.failing, ['redis']);
      // What "degraded" promises: the replica still serves, ingestion through Postgres directly.
      assert.equal((await gql(gateway.url, ViewerDocument, { key: 'cut-key' })).data?.viewer?.tenant, 'demo');
      const recorded = await gql(gateway.url, RecordEventsDocument, {
        key: 'cut-key',
        variables: { events: [{ type: 'while_redis_is_down' }] },
      });
      assert.equal(recorded.data?.recordEvents.accepted, 1, JSON.stringify(recorded.errors));
      proxy.restore();
      await waitFor(async () => (await ready(gateway.url)).body.status === 'ok', 10_000);
    } finally {
      await gateway.stop();
      await proxy.close();
    }
  });

  it('answers 503 naming Postgres when it is cut, within the check timeout', async () => {
    const proxy = await createTcpProxy(5432);
    const viaProxy = new URL(isolation.databaseUrl);
    viaProxy.port = String(proxy.port);
    const gateway = await startGateway(
      isolation.env({ DATABASE_URL: viaProxy.toString(), READY_CHECK_TIMEOUT_MS: '500' }),
    );
    try {
      assert.equal((await ready(gateway.url)).status, 200);
      proxy.cut();
      const started = Date.now();
      const { status, body } = await ready(gateway.url);
      assert.equal(status, 503);
      assert.deepEqual(body.failing, ['postgres']);
      assert.ok(Date.now() - started < 2_000);
      assert.equal(errorCode(await gql(gateway.url, ViewerDocument, { key: 'unknown' })), 'SERVICE_UNAVAILABLE');
    } finally {
      proxy.restore();
      await gateway.stop();
      await proxy.close();
    }
  });
});
