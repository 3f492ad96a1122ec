import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { createContextBuilder, type Services } from '../../../src/app/context.js';
import type { Viewer } from '../../../src/auth/viewer.js';

const viewer = { tenantId: 't1', keyId: 'k1', scopes: ['analytics:read'] } as unknown as Viewer;
const services = { analytics: { scope: (tenantId: string) => ({ tenantId }) } } as unknown as Services;
const builder = createContextBuilder({ keyVerifier: { verify: async () => viewer }, services });

describe('the context builder', () => {
  it("makes a request's logger on first use only, also after Apollo copies the context", () => {
    let made = 0;
    const logger = pino({ level: 'silent' });
    const context = builder.forRequest(viewer, { requestId: 'r1', logger: () => (made++, logger) });
    // What Apollo Server does with a context value before each operation (ApolloServer.js cloneObject).
    const copy = Object.assign(Object.create(Object.getPrototypeOf(context)), context) as typeof context;
    assert.equal(made, 0, 'neither building nor copying makes a logger');
    assert.equal(copy.requestId, 'r1');
    assert.deepEqual(copy.analytics, { tenantId: 't1' }, 'loaders bound to the viewer’s tenant');
    assert.equal(copy.logger, logger);
    assert.equal(copy.logger, logger);
    assert.equal(made, 1);
  });

  it('parses the key as HTTP and WebSocket send it, and answers null without one', async () => {
    const client = { ip: null, userAgent: null };
    assert.equal(await builder.authenticate({ transport: 'http', authorization: undefined, client }), null);
    assert.equal(await builder.authenticate({ transport: 'http', authorization: 'Bearer agk_x', client }), viewer);
    assert.equal(await builder.authenticate({ transport: 'websocket', authorization: 'agk_x', client }), viewer);
    await assert.rejects(builder.authenticate({ transport: 'http', authorization: 'agk_x', client }), /Bearer/);
  });
});
