import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-node';
import { loadConfig } from '../../../src/config/config.js';
import { createLogger } from '../../../src/observability/logger.js';
import { startTelemetry } from '../../../src/observability/telemetry.js';

/**
 * The telemetry of one process, as main.ts sets it up, with an in-memory exporter added. node:test
 * runs each file in a process of its own, and everything that loads pg, ioredis, graphql or
 * node:http is imported only after telemetry has started (below), as main.ts does with the app.
 */
const exporter = new InMemorySpanExporter();
const lines: Array<Record<string, unknown>> = [];
const sink = new Writable({
  write(chunk: Buffer, _encoding, done) {
    for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
    done();
  },
});
const logger = createLogger({ log: { level: 'info' } }, sink);
const telemetry = startTelemetry(
  { enabled: true, otlpEndpoint: undefined, serviceName: 'tracing-test', sampleRatio: 1 },
  { logger, spanProcessors: [new SimpleSpanProcessor(exporter)] },
);
const { createApp } = await import('../../../src/app/gateway.js');
const { isolatedEnv, testPool, waitFor } = await import('../../helpers/test-env.js');
const { createClient } = await import('graphql-ws');
const { default: WebSocket } = await import('ws');

const ADMIN = 'agk_tracing-admin-key-000000000000000000000000000';
const USERS_QUERY = 'query UsersWithEvents { users(first: 3) { edges { node { events(first: 2) { type } } } } }';

const HTTP = '@opentelemetry/instrumentation-http';
const GRAPHQL = '@opentelemetry/instrumentation-graphql';
const PG = '@opentelemetry/instrumentation-pg';
const REDIS = '@opentelemetry/instrumentation-ioredis';

interface Sent {
  readonly status: number;
  readonly body: { data?: unknown; errors?: Array<{ extensions?: { code?: string } }> };
  readonly requestId: string;
}

describe('tracing, trace ids in logs, resolver and operation metrics', () => {
  const isolation = isolatedEnv('tracing');
  let app: Awaited<ReturnType<typeof createApp>>;
  let url: string;

  async function send(query: string, headers: Record<string, string> = {}, operationName?: string): Promise<Sent> {
    const requestId = randomUUID();
    const response = await fetch(`${url}/graphql`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${ADMIN}`,
        'x-request-id': requestId,
        ...headers,
      },
      body: JSON.stringify({ query, operationName }),
    });
    return { status: response.status, body: (await response.json()) as Sent['body'], requestId };
  }

  /** The finished spans of one trace; the server span ends after the response, so wait for it. */
  async function traceOf(traceId: string): Promise<ReadableSpan[]> {
    await waitFor(
      async () => exporter.getFinishedSpans().some((s) => s.spanContext().traceId === traceId && isServer(s)),
      5_000,
      10,
    );
    return exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
  }

  before(async () => {
    const config = loadConfig(
      isolation.env({
        // The per-field result cache is what the Redis spans below follow; the whole-response cache
        // (test/integration/plugins/response-cache.test.ts) would answer before any resolver.
        BOOTSTRAP_API_KEY: ADMIN,
        INGEST_ACK: 'postgres',
        ROLLUP_REFRESH_INTERVAL_MS: '100',
        RESPONSE_CACHE: 'off',
      }),
    );
    app = await createApp(config, logger);
    url = `http://127.0.0.1:${(await app.listen()).port}`;
    // Four users with three events each; the rollups must have them before `users` lists them.
    const events = ['alice', 'bob', 'carol', 'dave'].flatMap((user) =>
      ['page_view', 'click', 'purchase'].map((type) => `{ type: "${type}", userId: "${user}" }`),
    );
    const recorded = await send(`mutation { recordEvents(events: [${events.join(', ')}]) { accepted } }`);
    assert.deepEqual(recorded.body.data, { recordEvents: { accepted: 12 } }, JSON.stringify(recorded.body));
    const pool = testPool(isolation.databaseUrl, 1);
    try {
      const since = Date.now();
      await waitFor(async () => {
        const { rows } = await pool.query<{ at: Date | null; dirty: number }>(
          'SELECT (SELECT min(refreshed_at) FROM rollup_refresh) AS at, (SELECT count(*)::int FROM rollup_dirty) AS dirty',
        );
        return rows[0]!.at !== null && rows[0]!.at.getTime() > since && rows[0]!.dirty === 0;
      }, 15_000);
    } finally {
      await pool.end();
    }
  });
  after(async () => {
    await app?.stop();
    await telemetry.shutdown();
    await isolation.cleanup();
  });

  it('gives one request a span tree: server span, operation, resolvers, and pg under the resolver that queried', async () => {
    const sent = await send(USERS_QUERY);
    assert.equal(sent.status, 200);
    const edges = (sent.body.data as { users: { edges: Array<{ node: { events: unknown[] } }> } }).users.edges;
    assert.equal(edges.length, 3);
    assert.ok(edges.every((e) => e.node.events.length === 2));

    const traceId = traceIdOfRequest(sent.requestId);
    const spans = await traceOf(traceId);
    const byId = new Map(spans.map((s) => [s.spanContext().spanId, s]));
    const parentOf = (s: ReadableSpan) => byId.get(s.parentSpanContext?.spanId ?? '');
    const ancestors = (s: ReadableSpan) => {
      const chain: ReadableSpan[] = [];
      for (let p = parentOf(s); p; p = parentOf(p)) chain.push(p);
      return chain;
    };

    const roots = spans.filter((s) => !parentOf(s));
    assert.deepEqual(
      roots.map((s) => [s.instrumentationScope.name, s.kind, s.name]),
      [[HTTP, SpanKind.SERVER, 'POST /graphql']],
    );
    const server = roots[0]!;
    assert.equal(server.parentSpanContext, undefined, 'no traceparent sent: the server span starts the trace');
    assert.equal(server.attributes['graphql.operation.name'], 'UsersWithEvents');
    assert.equal(server.attributes['graphql.operation.outcome'], 'success');

    const graphqlSpans = spans.filter((s) => s.instrumentationScope.name === GRAPHQL);
    const execute = graphqlSpans.find((s) => s.name === 'query UsersWithEvents');
    assert.ok(execute, `an operation span among ${graphqlSpans.map((s) => s.name).join(', ')}`);
    assert.equal(parentOf(execute)?.spanContext().spanId, server.spanContext().spanId);
    for (const name of ['graphql.parse', 'graphql.validate']) {
      assert.equal(parentOf(graphqlSpans.find((s) => s.name === name)!), server, `${name} under the server span`);
    }

    // Resolvers with code of their own only: users, and events once per user; never type, edges or node.
    const resolves = graphqlSpans.filter((s) => s.name.startsWith('graphql.resolve'));
    assert.deepEqual(resolves.map((s) => s.attributes['graphql.field.path']).sort(), [
      'users',
      'users.edges.0.node.events',
      'users.edges.1.node.events',
      'users.edges.2.node.events',
    ]);
    const users = resolves.find((s) => s.attributes['graphql.field.name'] === 'users')!;
    assert.equal(parentOf(users), execute);
    const eventSpans = resolves.filter((s) => s.attributes['graphql.field.name'] === 'events');
    for (const s of eventSpans) assert.equal(parentOf(s), users);

    // Every statement of the request sits under a resolver: users' page under users, the
    // batched latest-events query under the events resolver whose load started the batch.
    const queries = spans.filter((s) => s.instrumentationScope.name === PG && s.name.startsWith('pg.query'));
    assert.ok(queries.length >= 2, `pg spans: ${spans.map((s) => s.name).join(', ')}`);
    const under = (s: ReadableSpan, resolver: ReadableSpan) => ancestors(s).includes(resolver);
    assert.ok(queries.some((q) => under(q, users) && !eventSpans.some((e) => under(q, e))));
    assert.ok(queries.some((q) => eventSpans.some((e) => under(q, e))));
    for (const q of queries) assert.ok(ancestors(q).includes(server));
  });

  it("leaves type-graphql's plain fields untraced and untimed (object types marked simpleResolvers)", async () => {
    const sent = await send('query Me { viewer { tenant keyName scopes } }');
    assert.equal(sent.status, 200);
    const spans = await traceOf(traceIdOfRequest(sent.requestId));
    assert.deepEqual(
      spans.filter((s) => s.name.startsWith('graphql.resolve')).map((s) => s.name),
      ['graphql.resolve viewer'],
    );
    const metrics = await (await fetch(`${url}/metrics`)).text();
    assert.match(metrics, /graphql_resolver_duration_seconds_count\{parent_type="Query",field="viewer"\}/);
    assert.doesNotMatch(metrics, /graphql_resolver_duration_seconds_count\{parent_type="(Viewer|RecordEventsPayload)"/);
  });

  it('puts Redis calls under the resolver that made them (the result cache of eventTypes)', async () => {
    const sent = await send('query Types { eventTypes { type count } }');
    assert.equal(sent.status, 200, JSON.stringify(sent.body));
    const spans = await traceOf(traceIdOfRequest(sent.requestId));
    const resolver = spans.find((s) => s.name === 'graphql.resolve eventTypes');
    assert.ok(resolver, spans.map((s) => s.name).join(', '));
    const redis = spans.filter((s) => s.instrumentationScope.name === REDIS);
    const parentIdsOf = (s: ReadableSpan) => {
      const parentIds: string[] = [];
      for (let p = s.parentSpanContext?.spanId; p;) {
        parentIds.push(p);
        p = spans.find((x) => x.spanContext().spanId === p)?.parentSpanContext?.spanId;
      }
      return parentIds;
    };
    // The result cache's reads and writes (mget, set) sit under the resolver that made them; the cost
    // budget's scripts (evalsha), charged before execution and refunded after it, under the request.
    const cache = redis.filter((s) => s.name !== 'evalsha');
    assert.ok(cache.length > 0, `redis spans: ${spans.map((s) => s.name).join(', ')}`);
    for (const s of cache) {
      assert.ok(parentIdsOf(s).includes(resolver.spanContext().spanId), `${s.name} is under eventTypes`);
    }
    const server = spans.find(isServer)!;
    for (const s of redis.filter((s) => s.name === 'evalsha')) {
      assert.ok(!parentIdsOf(s).includes(resolver.spanContext().spanId), 'the budget is charged outside resolvers');
      assert.ok(parentIdsOf(s).includes(server.spanContext().spanId), 'the budget is charged within the request');
    }
  });

  it("continues the caller's trace from a W3C traceparent header", async () => {
    const traceId = randomBytes(16).toString('hex');
    const parentSpanId = randomBytes(8).toString('hex');
    const sent = await send(USERS_QUERY, { traceparent: `00-${traceId}-${parentSpanId}-01` });
    assert.equal(sent.status, 200);
    const spans = await traceOf(traceId);
    const server = spans.find(isServer)!;
    assert.equal(server.parentSpanContext?.spanId, parentSpanId);
    assert.equal(server.parentSpanContext?.isRemote, true);
    assert.ok(spans.length > 5);
    assert.equal(traceIdOfRequest(sent.requestId), traceId);
  });

  it('writes trace_id and span_id of the request span on every line of the request', async () => {
    const sent = await send(USERS_QUERY);
    const spans = await traceOf(traceIdOfRequest(sent.requestId));
    const server = spans.find(isServer)!;
    const ofRequest = lines.filter((l) => l.reqId === sent.requestId);
    const messages = ofRequest.map((l) => l.msg);
    // One line per request: the operation rides on it instead of a line of its own.
    assert.deepEqual(messages, ['request completed']);
    for (const line of ofRequest) {
      assert.equal(line.trace_id, server.spanContext().traceId, String(line.msg));
      assert.equal(line.span_id, server.spanContext().spanId, String(line.msg));
    }
    const operation = ofRequest.find((l) => l.msg === 'request completed')!.operation as Record<string, unknown>;
    assert.equal(operation.name, 'UsersWithEvents');
    assert.equal(operation.type, 'query');
    assert.equal(operation.outcome, 'success');
    assert.equal(typeof operation.durationMs, 'number');
    // Background work outside requests (consumers, refresher, key checks) starts no trace of its own.
    const orphans = exporter
      .getFinishedSpans()
      .filter((s) => !s.parentSpanContext && [PG, REDIS].includes(s.instrumentationScope.name));
    assert.deepEqual(
      orphans.map((s) => s.name),
      [],
    );
  });

  it('logs refused and failed operations with their outcome and error codes, never their variables', async () => {
    // The name the client claims is all there is when the document does not parse.
    const parseError = await send('query Broken { users(first: 3) {', {}, 'Broken');
    assert.equal(parseError.status, 400);
    const noKey = await fetch(`${url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        query: 'query Secretive($v: ID!) { event(id: $v) { type } }',
        variables: { v: 'hunter2' },
      }),
    });
    assert.equal(noKey.status, 401);
    const broken = lines.find((l) => l.reqId === parseError.requestId && l.msg === 'request completed');
    assert.deepEqual(broken?.operation, {
      name: 'Broken',
      type: 'unknown',
      outcome: 'rejected',
      durationMs: (broken?.operation as { durationMs: number }).durationMs,
      errorCodes: ['GRAPHQL_PARSE_FAILED'],
    });
    const secretive = lines.find(
      (l) => l.msg === 'request completed' && (l.operation as { name?: string } | undefined)?.name === 'Secretive',
    );
    assert.equal((secretive?.operation as { outcome: string }).outcome, 'error');
    assert.deepEqual((secretive?.operation as { errorCodes: string[] }).errorCodes, ['UNAUTHENTICATED']);
    assert.ok(!lines.some((l) => JSON.stringify(l).includes('hunter2')));
  });

  it('gives a subscription one span and one log line when it is set up, and leaves its pushes untraced', async () => {
    const client = createClient({
      url: `${url.replace('http', 'ws')}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${ADMIN}` },
      retryAttempts: 0,
    });
    try {
      const pushed: unknown[] = [];
      const refused: unknown[] = [];
      client.subscribe(
        { query: 'subscription Live { eventRecorded(type: "ws_probe") { type userId } }' },
        { next: (value) => pushed.push(value), error: () => undefined, complete: () => undefined },
      );
      client.subscribe(
        { query: 'subscription NotValid { noSuchField }', operationName: 'NotValid' },
        { next: () => undefined, error: (err) => refused.push(err), complete: () => undefined },
      );
      const setUp = () =>
        lines.find((l) => l.msg === 'graphql operation' && (l.operation as { name: string }).name === 'Live');
      await waitFor(async () => setUp() !== undefined && refused.length === 1, 5_000, 10);
      const recorded = await send(
        'mutation { recordEvents(events: [{ type: "ws_probe", userId: "zoe" }]) { accepted } }',
      );
      assert.deepEqual(recorded.body.data, { recordEvents: { accepted: 1 } });
      await waitFor(async () => pushed.length === 1, 5_000, 10);

      const spans = exporter.getFinishedSpans().filter((s) => s.name === 'subscription Live');
      assert.equal(spans.length, 1, 'one span for setting the subscription up, none for its push');
      const span = spans[0]!;
      assert.equal(span.kind, SpanKind.SERVER);
      assert.equal(span.parentSpanContext, undefined);
      assert.equal(span.attributes['graphql.operation.outcome'], 'success');
      const line = setUp()!;
      assert.equal(line.trace_id, span.spanContext().traceId);
      assert.equal(line.span_id, span.spanContext().spanId);
      assert.deepEqual(
        { ...(line.operation as object), durationMs: 0 },
        { name: 'Live', type: 'subscription', outcome: 'success', durationMs: 0 },
      );
      const rejected = lines.find(
        (l) => l.msg === 'graphql operation' && (l.operation as { name: string }).name === 'NotValid',
      );
      assert.equal((rejected?.operation as { outcome: string }).outcome, 'rejected');
      assert.deepEqual((rejected?.operation as { errorCodes: string[] }).errorCodes, ['GRAPHQL_VALIDATION_FAILED']);

      const metrics = await (await fetch(`${url}/metrics`)).text();
      assert.match(
        metrics,
        /^graphql_operation_duration_seconds_count\{operation_name="Live",operation_type="subscription",outcome="success"\} 1$/m,
      );
      assert.match(
        metrics,
        /^graphql_resolver_duration_seconds_count\{parent_type="Subscription",field="eventRecorded"\} 1$/m,
      );
    } finally {
      await client.dispose();
    }
  });

  it('exports resolver and operation histograms labelled by schema coordinates and bounded operation names', async () => {
    await send('query Aliased { first: users(first: 1) { edges { node { latest: events(first: 1) { type } } } } }');
    const text = await (await fetch(`${url}/metrics`)).text();
    const count = (sample: string) =>
      Number(
        text
          .split('\n')
          .find((l) => l.startsWith(`${sample} `))
          ?.split(' ')[1] ?? 0,
      );
    assert.ok(count('graphql_resolver_duration_seconds_count{parent_type="Query",field="users"}') >= 4);
    assert.ok(count('graphql_resolver_duration_seconds_count{parent_type="AnalyticsUser",field="events"}') >= 10);
    assert.ok(count('graphql_resolver_duration_seconds_count{parent_type="Mutation",field="recordEvents"}') >= 1);
    // Plain properties are not timed, and aliases never become labels.
    assert.doesNotMatch(text, /graphql_resolver_duration_seconds_count\{[^}]*field="(type|edges|node|first|latest)"/);
    assert.ok(
      count(
        'graphql_operation_duration_seconds_count{operation_name="UsersWithEvents",operation_type="query",outcome="success"}',
      ) >= 3,
    );
    assert.equal(
      count(
        'graphql_operation_duration_seconds_count{operation_name="Aliased",operation_type="query",outcome="success"}',
      ),
      1,
    );
    assert.ok(
      count(
        'graphql_operation_duration_seconds_count{operation_name="other",operation_type="unknown",outcome="rejected"}',
      ) >= 2,
    );
    // Names from documents that did not parse (HTTP) or validate (WebSocket) are not admitted as labels.
    assert.doesNotMatch(text, /operation_name="(Broken|NotValid)"/);
    assert.ok(
      count(
        'graphql_operation_duration_seconds_count{operation_name="anonymous",operation_type="mutation",outcome="success"}',
      ) >= 1,
    );
  });
});

function isServer(s: ReadableSpan): boolean {
  return s.instrumentationScope.name === HTTP && s.kind === SpanKind.SERVER;
}

/** The trace id the request line logged for a request, by the request id we sent. */
function traceIdOfRequest(requestId: string): string {
  const line = lines.find((l) => l.reqId === requestId && l.msg === 'request completed');
  assert.ok(line, `request ${requestId} was logged`);
  assert.match(String(line.trace_id), /^[0-9a-f]{32}$/);
  return String(line.trace_id);
}
