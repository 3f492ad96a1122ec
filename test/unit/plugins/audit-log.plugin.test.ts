import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApolloServer } from '@apollo/server';
import { maxDepthRule } from '@escape.tech/graphql-armor-max-depth';
import { GraphQLError, buildSchema } from 'graphql';
import type { AuditEntry } from '../../../src/audit/audit-entry.js';
import type { GatewayContext } from '../../../src/app/context.js';
import { ForbiddenError } from '../../../src/graphql/errors.js';
import { auditLogPlugin } from '../../../src/plugins/audit-log.plugin.js';

const schema = buildSchema(`
  type Query { open: Int, secret: Int, auditLog(first: Int): Conn }
  type Conn { edges: [Int], next: Conn }
  type Mutation { replayDeadLetters(limit: Int): Int, broken: Int }
`);
const rootValue = {
  open: () => 1,
  secret: () => {
    throw new ForbiddenError('This operation needs the scope admin');
  },
  auditLog: () => ({ edges: [1, 2] }),
  replayDeadLetters: ({ limit }: { limit: number }) => limit - 1,
  broken: () => {
    throw new Error('connection to 10.0.0.5 refused for jane@example.com');
  },
};
const viewer = {
  tenantId: '7f1c0f4e-0000-4000-8000-000000000001',
  tenantSlug: 'demo',
  keyId: '7f1c0f4e-0000-4000-8000-000000000002',
  keyName: 'k',
  keyPrefix: 'agk_abcdefgh',
  scopes: ['admin' as const],
};

/** A server with the audit plugin and, before it, a stand-in for another helper's limit plugin. */
async function serve() {
  const rows: AuditEntry[] = [];
  const server = new ApolloServer<GatewayContext>({
    schema,
    rootValue,
    // As graphql-armor's Apollo integration sets it up: the refusal is reported, not thrown.
    validationRules: [
      maxDepthRule({ n: 3, propagateOnRejection: false, onReject: [(context, err) => context?.reportError(err)] }),
    ],
    plugins: [
      {
        async requestDidStart() {
          return {
            async didResolveOperation({ operationName }) {
              if (operationName === 'Expensive') {
                throw new GraphQLError('too costly', { extensions: { code: 'COST_LIMIT_EXCEEDED' } });
              }
            },
          };
        },
      },
      auditLogPlugin({ writer: { record: (row) => rows.push(row) } }),
    ],
  });
  await server.start();
  const run = (query: string, variables?: Record<string, unknown>) =>
    server.executeOperation(
      { query, variables },
      {
        contextValue: {
          viewer,
          requestId: 'req-1',
          client: { ip: '127.0.0.1', userAgent: 'ua' },
        } as unknown as GatewayContext,
      },
    );
  return { rows, run, stop: () => server.stop() };
}

describe('audit log plugin', () => {
  it('records mutations with their outcome, and nothing for a plain query', async () => {
    const { rows, run, stop } = await serve();
    try {
      await run('query Plain { open }');
      assert.equal(rows.length, 0);
      await run('mutation Replay { again: replayDeadLetters(limit: 5) }');
      assert.equal(rows.length, 1);
      assert.deepEqual(
        { ...rows[0], occurredAt: undefined },
        {
          occurredAt: undefined,
          tenantId: viewer.tenantId,
          keyId: viewer.keyId,
          keyPrefix: viewer.keyPrefix,
          action: 'replayDeadLetters',
          operationName: 'Replay',
          result: 'success',
          ip: '127.0.0.1',
          userAgent: 'ua',
          traceId: null,
          requestId: 'req-1',
          details: { limit: 5, replayed: 4 },
        },
      );
      await run('mutation { broken }');
      assert.equal(rows[1]!.result, 'error');
      assert.deepEqual(
        rows[1]!.details,
        { code: 'INTERNAL_SERVER_ERROR', message: 'Internal server error' },
        'internal details stay out of a row tenants read',
      );
    } finally {
      await stop();
    }
  });

  it('records a scope denial on a query field once, and an admin read', async () => {
    const { rows, run, stop } = await serve();
    try {
      await run('query Q { open secret again: secret }');
      assert.deepEqual(
        rows.map((r) => [r.action, r.result, r.details.code]),
        [['secret', 'denied', 'FORBIDDEN']],
      );
      await run('{ auditLog(first: 2) { edges } }');
      assert.deepEqual(
        [rows[1]!.action, rows[1]!.result, rows[1]!.details],
        ['auditLog', 'success', { filter: {}, first: 2, after: null, returned: 2 }],
      );
    } finally {
      await stop();
    }
  });

  it('records limit rejections: by code from another plugin, and graphql-armor validation limits', async () => {
    const { rows, run, stop } = await serve();
    try {
      await run('query Expensive { open }');
      assert.equal(rows.length, 1);
      assert.equal(rows[0]!.action, 'request');
      assert.equal(rows[0]!.result, 'rejected');
      assert.equal(rows[0]!.details.code, 'COST_LIMIT_EXCEEDED');
      assert.equal(rows[0]!.operationName, 'Expensive');

      await run('query Deep { auditLog { edges } open }');
      assert.equal(rows.length, 2, 'within the depth limit: an admin read');
      await run('query Deeper { auditLog { next { next { next { edges } } } } }');
      assert.equal(rows.length, 3);
      assert.equal(rows[2]!.action, 'request');
      assert.equal(rows[2]!.result, 'rejected');
      assert.equal(rows[2]!.details.code, 'GRAPHQL_VALIDATION_FAILED');
      assert.match(String(rows[2]!.details.message), /depth limit of 3 exceeded/);
    } finally {
      await stop();
    }
  });
});
