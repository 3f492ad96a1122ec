import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { spawnGateway, type SpawnedGateway } from '../helpers/gateway.js';
import { isolatedEnv } from '../helpers/test-env.js';

const ADMIN = 'agk_tracing-e2e-admin-key-00000000000000000000000';
const SCOPES = [
  '@opentelemetry/instrumentation-http',
  '@opentelemetry/instrumentation-graphql',
  '@opentelemetry/instrumentation-pg',
  '@opentelemetry/instrumentation-ioredis',
];

interface Received {
  readonly path: string;
  readonly contentType: string;
  readonly body: Buffer;
}

/** Stands in for an OpenTelemetry collector: keeps every OTLP/HTTP request it gets. */
async function startCollector(): Promise<{ url: string; received: Received[]; server: Server }> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({
        path: req.url ?? '',
        contentType: req.headers['content-type'] ?? '',
        body: Buffer.concat(chunks),
      });
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received, server };
}

async function post(gateway: SpawnedGateway, query: string, headers: Record<string, string> = {}) {
  const response = await fetch(`${gateway.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}`, ...headers },
    body: JSON.stringify({ query }),
  });
  return { status: response.status, body: (await response.json()) as { data?: unknown; errors?: unknown } };
}

async function stop(gateway: SpawnedGateway): Promise<Array<Record<string, unknown>>> {
  gateway.child.kill('SIGTERM');
  assert.equal((await gateway.exited).code, 0);
  return gateway
    .output()
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/**
 * `node dist/src/main.js` as it runs in production: an ES module process, where the
 * instrumentations only work if telemetry starts (with its loader hook) before the app is imported.
 */
describe('tracing in the gateway process', () => {
  const isolation = isolatedEnv('tracing_e2e');
  let collector: Awaited<ReturnType<typeof startCollector>>;
  before(async () => {
    collector = await startCollector();
  });
  after(async () => {
    await new Promise((resolve) => collector.server.close(resolve));
    await isolation.cleanup();
  });

  it('exports http, graphql, pg and ioredis spans of a traced request over OTLP, flushed on SIGTERM', async () => {
    const gateway = await spawnGateway(
      isolation.env({
        BOOTSTRAP_API_KEY: ADMIN,
        OTEL_EXPORTER_OTLP_ENDPOINT: `${collector.url}/`,
        OTEL_SERVICE_NAME: 'tracing-e2e-gateway',
      }),
    );
    const traceId = randomBytes(16).toString('hex');
    let lines: Array<Record<string, unknown>>;
    try {
      // recordEvents adds to the Redis stream inside its resolver; users reads Postgres.
      const sent = await post(
        gateway,
        'mutation Record { recordEvents(events: [{ type: "signup", userId: "u1" }]) { accepted } }',
        { traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` },
      );
      assert.deepEqual((sent.body as { data?: unknown }).data, { recordEvents: { accepted: 1 } });
      const users = await post(gateway, 'query Users { users(first: 3) { edges { node { id } } } }', {
        traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01`,
      });
      assert.equal(users.status, 200, JSON.stringify(users.body));
    } finally {
      lines = await stop(gateway);
    }

    const exports = collector.received.filter((r) => r.path === '/v1/traces');
    assert.ok(exports.length > 0, 'spans were exported');
    assert.ok(exports.every((r) => r.contentType === 'application/x-protobuf'));
    // The protobuf carries strings as they are and ids as raw bytes.
    const body = Buffer.concat(exports.map((r) => r.body));
    const text = body.toString('latin1');
    for (const scope of SCOPES) assert.ok(text.includes(scope), `${scope} spans were exported`);
    assert.ok(text.includes('tracing-e2e-gateway'), 'service.name');
    assert.ok(text.includes('graphql.resolve'), 'resolver spans');
    assert.ok(body.includes(Buffer.from(traceId, 'hex')), "the caller's trace id");
    const completed = lines.filter((l) => l.msg === 'request completed');
    assert.equal(completed.length, 2);
    for (const line of completed) assert.equal(line.trace_id, traceId);
  });

  it("without an exporter still gives every line of a request ids in the caller's trace", async () => {
    const gateway = await spawnGateway(isolation.env({ BOOTSTRAP_API_KEY: ADMIN, MIGRATE_ON_START: 'false' }));
    const traceId = randomBytes(16).toString('hex');
    const parentId = randomBytes(8).toString('hex');
    let lines: Array<Record<string, unknown>>;
    try {
      const users = await post(gateway, 'query Users { users(first: 3) { edges { node { id } } } }', {
        traceparent: `00-${traceId}-${parentId}-01`,
      });
      assert.equal(users.status, 200, JSON.stringify(users.body));
    } finally {
      lines = await stop(gateway);
    }
    // One line per request, the operation on it.
    const request = lines.filter((l) => l.msg === 'request completed' || l.msg === 'graphql operation');
    assert.equal(request.length, 1);
    const [line] = request;
    assert.equal(line!.msg, 'request completed');
    assert.equal((line!.operation as { name: string }).name, 'Users');
    assert.equal(line!.trace_id, traceId);
    assert.match(String(line!.span_id), /^[0-9a-f]{16}$/);
    assert.notEqual(line!.span_id, parentId, "the request's own span, a child of the caller's");
  });

  it('with TRACING_ENABLED=false exports nothing and logs no trace ids, and still serves and times resolvers', async () => {
    const before = collector.received.length;
    const gateway = await spawnGateway(
      isolation.env({
        BOOTSTRAP_API_KEY: ADMIN,
        MIGRATE_ON_START: 'false',
        TRACING_ENABLED: 'false',
        OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
      }),
    );
    let metrics: string;
    let lines: Array<Record<string, unknown>>;
    try {
      const users = await post(gateway, 'query Users { users(first: 3) { edges { node { id } } } }', {
        traceparent: `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`,
      });
      assert.equal(users.status, 200, JSON.stringify(users.body));
      metrics = await (await fetch(`${gateway.url}/metrics`)).text();
    } finally {
      lines = await stop(gateway);
    }
    assert.equal(collector.received.length, before);
    assert.ok(lines.some((l) => l.msg === 'request completed' && (l.operation as { name?: string })?.name === 'Users'));
    assert.ok(!lines.some((l) => 'trace_id' in l || 'span_id' in l));
    assert.match(metrics, /^graphql_resolver_duration_seconds_count\{parent_type="Query",field="users"\} 1$/m);
    assert.match(
      metrics,
      /^graphql_operation_duration_seconds_count\{operation_name="Users",operation_type="query",outcome="success"\} 1$/m,
    );
  });
});
