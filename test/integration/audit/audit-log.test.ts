import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createClient } from 'graphql-ws';
import pg from 'pg';
import WebSocket from 'ws';
import { pino } from 'pino';
import {
  AuditLogDocument,
  type AuditLogQuery,
  type AuditLogQueryVariables,
  CreateApiKeyDocument,
  EventsDocument,
  RecordEventDocument,
  RecordEventsDocument,
  RevokeApiKeyDocument,
} from '../../generated/graphql.js';
import { startGateway, type RunningGateway } from '../../helpers/gateway.js';
import { errorCode, gql } from '../../helpers/graphql-client.js';
import { isolatedEnv, testPool, waitFor } from '../../helpers/test-env.js';
import { ApiKeyService } from '../../../src/auth/api-key.service.js';
import { loadConfig } from '../../../src/config/config.js';
import { createPool } from '../../../src/db/pool.js';

const ADMIN_KEY = 'agk_test-admin-key-for-the-audit-suite-0000000000';
const CALLER_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const USER_AGENT = 'audit-suite/1.0 (+https://example.test)';

interface Row {
  id: string;
  tenant_id: string | null;
  api_key_id: string | null;
  key_prefix: string | null;
  action: string;
  operation_name: string | null;
  result: string;
  ip: string | null;
  user_agent: string | null;
  trace_id: string | null;
  request_id: string | null;
  details: Record<string, unknown>;
}

describe('the audit log', () => {
  const isolation = isolatedEnv('audit_log');
  let gateway: RunningGateway;
  let pool: pg.Pool;
  let keys: ApiKeyService;
  let demoTenant: string;
  let adminKeyId: string;

  before(async () => {
    gateway = await startGateway(
      isolation.env({ BOOTSTRAP_API_KEY: ADMIN_KEY, AUDIT_FLUSH_INTERVAL_MS: '20', MAX_BODY_BYTES: '4096' }),
    );
    pool = testPool(isolation.databaseUrl);
    keys = new ApiKeyService(pool, undefined, isolation.redisKeyPrefix, pino({ level: 'silent' }));
    const { rows } = await pool.query<{ tenant_id: string; id: string }>(
      `SELECT tenant_id, id FROM api_keys WHERE name = 'bootstrap'`,
    );
    demoTenant = rows[0]!.tenant_id;
    adminKeyId = rows[0]!.id;
  });

  after(async () => {
    await gateway?.stop();
    await pool?.end();
    await isolation.cleanup();
  });

  /** The rows with this request id, once the writer has written them. */
  async function rowsOf(requestId: string, atLeast = 1): Promise<Row[]> {
    let rows: Row[] = [];
    await waitFor(async () => {
      ({ rows } = await pool.query<Row>(
        `SELECT id::text, tenant_id, api_key_id, key_prefix, action, operation_name, result, host(ip) AS ip,
                user_agent, trace_id, request_id, details
         FROM audit_log WHERE request_id = $1 ORDER BY id`,
        [requestId],
      ));
      return rows.length >= atLeast;
    }, 5_000);
    return rows;
  }

  let requests = 0;
  const client = (name: string) => ({ 'user-agent': USER_AGENT, 'x-request-id': `${name}-${++requests}` });

  function assertTraceId(row: Row) {
    // The request's trace: from its span when the SDK records, else from its log lines' ids.
    assert.ok(row.trace_id === null || /^[0-9a-f]{32}$/.test(row.trace_id), String(row.trace_id));
  }

  it('records a recordEvents mutation with its outcome, counts, caller and request', async () => {
    const headers = client('record-events');
    const response = await gql(gateway.url, RecordEventsDocument, {
      key: ADMIN_KEY,
      headers: { ...headers, traceparent: `00-${CALLER_TRACE}-00f067aa0ba902b7-01` },
      variables: {
        events: [
          { type: 'page_view', userId: 'jane.doe@example.com', messageId: 'audit-1' },
          { type: 'signup', messageId: 'audit-2' },
          { type: 'not valid!' },
        ],
      },
    });
    assert.equal(response.data?.recordEvents.accepted, 2);
    const [row, ...others] = await rowsOf(headers['x-request-id']);
    assert.equal(others.length, 0);
    // No exporter here, so no OpenTelemetry SDK: the row names the caller's trace from traceparent.
    assert.equal(row!.trace_id, CALLER_TRACE);
    assert.deepEqual(
      { ...row!, id: undefined, trace_id: undefined, details: undefined },
      {
        id: undefined,
        tenant_id: demoTenant,
        api_key_id: adminKeyId,
        key_prefix: ADMIN_KEY.slice(0, 12),
        action: 'recordEvents',
        operation_name: 'RecordEvents',
        result: 'partial',
        ip: '127.0.0.1',
        user_agent: USER_AGENT,
        trace_id: undefined,
        request_id: headers['x-request-id'],
        details: undefined,
      },
    );
    assertTraceId(row!);
    const details = row!.details as { events: number; accepted: number; duplicates: number; rejected: number };
    assert.equal(details.events, 3);
    assert.equal(details.accepted, 2);
    assert.equal(details.duplicates, 0);
    assert.equal(details.rejected, 1);
    assert.deepEqual(
      (row!.details.errors as { index: number }[]).map((e) => e.index),
      [2],
    );
    assert.ok(!JSON.stringify(row).includes('jane.doe@example.com'));

    // The same messageIds again: duplicates, success.
    const again = client('record-events');
    await gql(gateway.url, RecordEventsDocument, {
      key: ADMIN_KEY,
      headers: again,
      variables: { events: [{ type: 'page_view', messageId: 'audit-1' }] },
    });
    const [repeat] = await rowsOf(again['x-request-id']);
    assert.equal(repeat!.result, 'success');
    assert.equal(repeat!.details.duplicates, 1);
  });

  it('records createApiKey with the masked name and scopes, never the key, and revokeApiKey with the id', async () => {
    const headers = client('create-key');
    const created = await gql(gateway.url, CreateApiKeyDocument, {
      key: ADMIN_KEY,
      headers,
      variables: { name: 'ops key of jane.doe@example.com', scopes: ['analytics:read'] },
    });
    const { key, apiKey } = created.data!.createApiKey;
    const [row] = await rowsOf(headers['x-request-id']);
    assert.equal(row!.action, 'createApiKey');
    assert.equal(row!.result, 'success');
    assert.deepEqual(row!.details, {
      name: 'ops key of [REDACTED:email]',
      scopes: ['analytics:read'],
      createdKeyId: apiKey.id,
      createdKeyPrefix: key.slice(0, 12),
    });
    assert.ok(!JSON.stringify(row).includes(key.slice(12)), 'the plaintext key is never recorded');

    const revokeHeaders = client('revoke-key');
    await gql(gateway.url, RevokeApiKeyDocument, {
      key: ADMIN_KEY,
      headers: revokeHeaders,
      variables: { id: apiKey.id },
    });
    const [revoked] = await rowsOf(revokeHeaders['x-request-id']);
    assert.equal(revoked!.action, 'revokeApiKey');
    assert.equal(revoked!.result, 'success');
    assert.deepEqual(revoked!.details, { revokedKeyId: apiKey.id });
    assert.equal(revoked!.api_key_id, adminKeyId);
  });

  it('records an authentication failure with the presented key prefix only, in no tenant', async () => {
    const bad = 'agk_' + 'Zq9'.repeat(14);
    const headers = client('bad-key');
    const response = await gql(gateway.url, RecordEventDocument, {
      key: bad,
      headers,
      variables: { input: { type: 'page_view' } },
    });
    assert.equal(response.status, 401);
    const [row] = await rowsOf(headers['x-request-id']);
    assert.equal(row!.action, 'authenticate');
    assert.equal(row!.result, 'unauthenticated');
    assert.equal(row!.key_prefix, bad.slice(0, 12));
    assert.equal(row!.tenant_id, null);
    assert.equal(row!.api_key_id, null);
    assert.equal(row!.ip, '127.0.0.1');
    assert.ok(!JSON.stringify(row).includes(bad.slice(12)), 'nothing past the prefix');

    // Something that is not one of our keys keeps nothing of it at all.
    const other = client('bad-key');
    await gql(gateway.url, RecordEventDocument, {
      key: 'hunter2-password',
      headers: other,
      variables: { input: { type: 'x' } },
    });
    const [otherRow] = await rowsOf(other['x-request-id']);
    assert.equal(otherRow!.key_prefix, null);
    assert.ok(!JSON.stringify(otherRow).includes('hunter2'));
  });

  it('records scope denials on a mutation and on a query', async () => {
    const { plaintext: key } = await keys.createKey({ tenantSlug: 'demo', name: 'reader', scopes: ['analytics:read'] });
    const headers = client('denied');
    const denied = await gql(gateway.url, CreateApiKeyDocument, {
      key,
      headers,
      variables: { name: 'escalate', scopes: ['admin'] },
    });
    assert.equal(errorCode(denied), 'FORBIDDEN');
    const [row] = await rowsOf(headers['x-request-id']);
    assert.equal(row!.action, 'createApiKey');
    assert.equal(row!.result, 'denied');
    assert.equal(row!.tenant_id, demoTenant);
    assert.equal(row!.key_prefix, key.slice(0, 12));
    assert.equal(row!.details.code, 'FORBIDDEN');
    assert.deepEqual(row!.details.scopes, ['admin'], 'what was asked for');

    const writer = await keys.createKey({ tenantSlug: 'demo', name: 'writer', scopes: ['events:write'] });
    const queryHeaders = client('denied-query');
    const query = await gql(gateway.url, EventsDocument, {
      key: writer.plaintext,
      headers: queryHeaders,
      variables: {},
    });
    assert.equal(errorCode(query), 'FORBIDDEN');
    const [queryRow] = await rowsOf(queryHeaders['x-request-id']);
    assert.equal(queryRow!.action, 'events');
    assert.equal(queryRow!.result, 'denied');
    assert.equal(queryRow!.operation_name, 'Events');
  });

  it('records a body over MAX_BODY_BYTES as a limit rejection of the sender', async () => {
    const headers = client('too-large');
    const response = await fetch(`${gateway.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_KEY}`, ...headers },
      body: JSON.stringify({ query: '{ viewer { tenant } }', padding: 'x'.repeat(5_000) }),
    });
    assert.equal(response.status, 413);
    const [row] = await rowsOf(headers['x-request-id']);
    assert.equal(row!.action, 'request');
    assert.equal(row!.result, 'rejected');
    assert.equal(row!.tenant_id, demoTenant);
    assert.equal(row!.details.code, 'PAYLOAD_TOO_LARGE');
    assert.equal(row!.details.limitBytes, 4096);
  });

  it('records the cost limit refusing an operation and the batch limit refusing a request', async () => {
    const costly = client('too-costly');
    const refused = await fetch(`${gateway.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_KEY}`, ...costly },
      body: JSON.stringify({
        query: 'query Wide { users(first: 100) { edges { node { events(first: 100) { type } } } } }',
      }),
    });
    assert.equal(
      ((await refused.json()) as { errors: [{ extensions: { code: string } }] }).errors[0].extensions.code,
      'COST_LIMIT_EXCEEDED',
    );
    const [costRow] = await rowsOf(costly['x-request-id']);
    assert.equal(costRow!.action, 'request');
    assert.equal(costRow!.result, 'rejected');
    assert.equal(costRow!.operation_name, 'Wide');
    assert.equal(costRow!.tenant_id, demoTenant);
    assert.equal(costRow!.details.code, 'COST_LIMIT_EXCEEDED');

    const batched = client('batch');
    const response = await fetch(`${gateway.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_KEY}`, ...batched },
      body: JSON.stringify(Array.from({ length: 11 }, () => ({ query: '{ viewer { tenant } }' }))),
    });
    assert.equal(response.status, 400);
    const [batchRow] = await rowsOf(batched['x-request-id']);
    assert.equal(batchRow!.action, 'request');
    assert.equal(batchRow!.result, 'rejected');
    assert.equal(batchRow!.tenant_id, demoTenant);
    assert.deepEqual(
      { code: batchRow!.details.code, limit: batchRow!.details.limit, found: batchRow!.details.found },
      { code: 'COST_LIMIT_EXCEEDED', limit: 'batch', found: 11 },
    );
  });

  it('lists the tenant’s rows newest first, filtered by action, result, time range and key, in pages', async () => {
    const pager = await keys.createKey({ tenantSlug: 'demo', name: 'pager', scopes: ['events:write'] });
    const from = new Date();
    for (let i = 0; i < 5; i++) {
      await gql(gateway.url, RecordEventDocument, {
        key: pager.plaintext,
        headers: client('pager'),
        variables: { input: { type: 'page_view', messageId: `pager-${i}` } },
      });
    }
    await waitFor(async () => {
      const { rows } = await pool.query(`SELECT 1 FROM audit_log WHERE api_key_id = $1`, [pager.apiKey.id]);
      return rows.length === 5;
    }, 5_000);
    const to = new Date(Date.now() + 1_000);

    const seen: string[] = [];
    let after: string | null | undefined = null;
    let pages = 0;
    do {
      const page: Awaited<ReturnType<typeof gql<AuditLogQuery, AuditLogQueryVariables>>> = await gql(
        gateway.url,
        AuditLogDocument,
        {
          key: ADMIN_KEY,
          variables: { filter: { keyId: pager.apiKey.id }, first: 2, after },
        },
      );
      assert.equal(page.errors, undefined, JSON.stringify(page.errors));
      const { edges, pageInfo } = page.data!.auditLog;
      for (const e of edges) {
        assert.equal(e.node.action, 'recordEvent');
        assert.equal(e.node.keyId, pager.apiKey.id);
        assert.equal(e.node.keyPrefix, pager.plaintext.slice(0, 12));
        seen.push(e.node.requestId!);
      }
      after = pageInfo.hasNextPage ? pageInfo.endCursor : null;
      pages++;
    } while (after);
    assert.equal(pages, 3);
    const expected = Array.from({ length: 5 }, (_, i) => `pager-${requests - i}`);
    assert.deepEqual(seen, expected, 'newest first, each once');

    const byAction = await gql(gateway.url, AuditLogDocument, {
      key: ADMIN_KEY,
      variables: { filter: { action: 'createApiKey', result: 'denied' }, first: 100 },
    });
    const denied = byAction.data!.auditLog.edges.map((e) => e.node);
    assert.equal(denied.length, 1);
    assert.deepEqual(denied[0]!.details, {
      name: 'escalate',
      scopes: ['admin'],
      code: 'FORBIDDEN',
      message: 'This operation needs the scope admin',
    });

    const inRange = await gql(gateway.url, AuditLogDocument, {
      key: ADMIN_KEY,
      variables: { filter: { action: 'recordEvent', from: from.toISOString(), to: to.toISOString() }, first: 100 },
    });
    assert.equal(inRange.data!.auditLog.edges.length, 5);
    const before = await gql(gateway.url, AuditLogDocument, {
      key: ADMIN_KEY,
      variables: { filter: { action: 'recordEvent', to: from.toISOString() }, first: 100 },
    });
    assert.equal(before.data!.auditLog.edges.length, 0);

    // Reading the audit log is itself audited.
    const reads = await gql(gateway.url, AuditLogDocument, {
      key: ADMIN_KEY,
      variables: { filter: { action: 'auditLog' }, first: 1 },
    });
    assert.equal(reads.data!.auditLog.edges[0]?.node.result, 'success');
  });

  it('checks its arguments, and answers admins only, of their own tenant', async () => {
    for (const variables of [
      { first: 0 },
      { first: 101 },
      { after: 'not-a-cursor' },
      { filter: { keyId: 'nope' } },
      { filter: { from: '2026-01-02T00:00:00Z', to: '2026-01-01T00:00:00Z' } },
    ]) {
      const bad = await gql(gateway.url, AuditLogDocument, { key: ADMIN_KEY, variables });
      assert.equal(errorCode(bad), 'BAD_USER_INPUT', JSON.stringify(variables));
    }

    const reader = await keys.createKey({ tenantSlug: 'demo', name: 'not-admin', scopes: ['analytics:read'] });
    assert.equal(
      errorCode(await gql(gateway.url, AuditLogDocument, { key: reader.plaintext, variables: {} })),
      'FORBIDDEN',
    );

    const other = await keys.createKey({ tenantSlug: 'other', name: 'other-admin', scopes: ['admin'] });
    await gql(gateway.url, RecordEventDocument, { key: other.plaintext, variables: { input: { type: 'x' } } });
    await waitFor(async () => {
      const { rows } = await pool.query(`SELECT 1 FROM audit_log WHERE api_key_id = $1`, [other.apiKey.id]);
      return rows.length > 0;
    }, 5_000);
    const theirs = await gql(gateway.url, AuditLogDocument, { key: other.plaintext, variables: { first: 100 } });
    const nodes = theirs.data!.auditLog.edges.map((e) => e.node);
    assert.ok(nodes.length >= 1);
    assert.ok(
      nodes.every((n) => n.keyId === other.apiKey.id),
      'only the other tenant’s own rows',
    );
    assert.ok(!nodes.some((n) => n.action === 'authenticate'), 'rows of unknown keys belong to no tenant');

    const ours = await gql(gateway.url, AuditLogDocument, { key: ADMIN_KEY, variables: { first: 100 } });
    assert.ok(!ours.data!.auditLog.edges.some((e) => e.node.keyId === other.apiKey.id));
    assert.ok(!ours.data!.auditLog.edges.some((e) => e.node.action === 'authenticate'));
  });

  it('records refused WebSocket connections (a bad key, a key without analytics:read) and subscriptions refused by a limit', async () => {
    const connect = (authorization: string, userAgent: string) =>
      new Promise<number>((resolve, reject) => {
        const socket = new WebSocket(`${gateway.url.replace('http', 'ws')}/graphql`, 'graphql-transport-ws', {
          headers: { 'user-agent': userAgent },
        });
        socket.once('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization } })));
        socket.once('close', (code) => resolve(code));
        socket.once('error', reject);
      });
    const bad = 'agk_' + 'Ws7'.repeat(14);
    assert.equal(await connect(`Bearer ${bad}`, 'ws-audit/bad'), 4401);
    const writer = await keys.createKey({ tenantSlug: 'demo', name: 'ws-writer', scopes: ['events:write'] });
    assert.equal(await connect(`Bearer ${writer.plaintext}`, 'ws-audit/forbidden'), 4403);

    const byAgent = async (agent: string) => {
      let rows: Row[] = [];
      await waitFor(async () => {
        ({ rows } = await pool.query<Row>(
          `SELECT tenant_id, api_key_id, key_prefix, action, result, host(ip) AS ip, details
           FROM audit_log WHERE user_agent = $1`,
          [agent],
        ));
        return rows.length > 0;
      }, 5_000);
      return rows;
    };
    const [unauthenticated] = await byAgent('ws-audit/bad');
    assert.equal(unauthenticated!.action, 'authenticate');
    assert.equal(unauthenticated!.result, 'unauthenticated');
    assert.equal(unauthenticated!.key_prefix, bad.slice(0, 12));
    assert.equal(unauthenticated!.tenant_id, null);
    assert.equal(unauthenticated!.ip, '127.0.0.1');
    assert.equal(unauthenticated!.details.transport, 'websocket');
    const [denied] = await byAgent('ws-audit/forbidden');
    assert.equal(denied!.action, 'subscribe');
    assert.equal(denied!.result, 'denied');
    assert.equal(denied!.tenant_id, demoTenant);
    assert.equal(denied!.api_key_id, writer.apiKey.id);

    // A subscription refused by a limit in onSubscribe, as an HTTP operation would be.
    const client = createClient({
      url: `${gateway.url.replace('http', 'ws')}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${ADMIN_KEY}` },
      retryAttempts: 0,
    });
    try {
      const refusal = await new Promise<unknown>((resolve) =>
        client.subscribe(
          // Nested past MAX_QUERY_DEPTH (12).
          {
            operationName: 'Deep',
            query: `subscription Deep { eventRecorded { ${'user { events { '.repeat(6)}id${' } }'.repeat(6)} } }`,
          },
          { next: () => undefined, error: resolve, complete: () => resolve(null) },
        ),
      );
      assert.equal((refusal as [{ extensions: { code: string } }])[0].extensions.code, 'COST_LIMIT_EXCEEDED');
    } finally {
      await client.dispose();
    }
    let rows: Row[] = [];
    await waitFor(async () => {
      ({ rows } = await pool.query<Row>(
        `SELECT tenant_id, action, result, operation_name, details FROM audit_log
         WHERE action = 'subscribe' AND result = 'rejected' AND operation_name = 'Deep'`,
      ));
      return rows.length > 0;
    }, 5_000);
    assert.equal(rows[0]!.tenant_id, demoTenant);
    assert.deepEqual(
      { code: rows[0]!.details.code, reason: rows[0]!.details.reason },
      { code: 'COST_LIMIT_EXCEEDED', reason: 'depth' },
    );
  });

  it('cannot be changed or deleted through the gateway’s own database role', async () => {
    const config = loadConfig(isolation.env());
    const appPool = createPool(config, pino({ level: 'silent' }));
    try {
      const { rows } = await appPool.query<{ user: string }>('SELECT current_user AS user');
      assert.ok(rows[0]!.user);
      const before = (await appPool.query(`SELECT count(*)::int AS n FROM audit_log`)).rows[0].n as number;
      assert.ok(before > 0);
      for (const statement of [
        `UPDATE audit_log SET result = 'success'`,
        `DELETE FROM audit_log`,
        `TRUNCATE audit_log`,
      ]) {
        await assert.rejects(appPool.query(statement), (err: { code?: string; message: string }) => {
          assert.equal(err.code, '42501', statement);
          assert.match(err.message, /audit_log is append-only/);
          return true;
        });
      }
      const afterCount = (await appPool.query(`SELECT count(*)::int AS n FROM audit_log`)).rows[0].n as number;
      assert.ok(afterCount >= before);
    } finally {
      await appPool.end();
    }
  });
});
