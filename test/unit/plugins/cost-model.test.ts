import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { extendSchema, getOperationAST, parse, type GraphQLSchema } from 'graphql';
import { buildGatewaySchema } from '../../../src/app/schema.js';
import { costModel, TooManyNodesError, type CostModel } from '../../../src/plugins/cost/cost-model.js';

describe('cost model', () => {
  let schema: GraphQLSchema;
  let model: CostModel;
  before(async () => {
    schema = await buildGatewaySchema();
    model = costModel(schema);
  });

  const requested = (query: string, variables?: Record<string, unknown>) => {
    const document = parse(query);
    return model.requested(document, getOperationAST(document)!, variables);
  };
  const actual = (query: string, data: Record<string, unknown>, variables?: Record<string, unknown>) => {
    const document = parse(query);
    return model.actual(document, getOperationAST(document)!, variables, data);
  };

  it('prices objects at 1 and scalars at 0', () => {
    assert.equal(requested('{ viewer { tenant keyName scopes } }'), 1);
    assert.equal(requested('{ viewer { tenant costBudget { currentlyAvailable } } }'), 2);
    assert.equal(requested('{ event(id: "x") { id type user { id eventCount } } }'), 2);
  });

  it('prices a connection at 2 plus first × one edge, with first capped at the page maximum and defaulted', () => {
    const q = (args: string) =>
      `{ events${args} { edges { cursor node { id user { id } } } pageInfo { hasNextPage } } }`;
    assert.equal(requested(q('(first: 20)')), 2 + 20 * 2);
    assert.equal(requested(q('')), 2 + 20 * 2, 'default page size 20');
    assert.equal(requested(q('(first: 500)')), 2 + 100 * 2, 'the service never returns more than 100');
    assert.equal(
      requested('{ users(first: 10) { totalCount pageInfo { endCursor } } }'),
      2,
      'no edges: the page and its count',
    );
  });

  it('reads sizes from variables and counts each alias', () => {
    const query = `query($a: Int, $b: Int) {
      recent: events(first: $a) { edges { node { id } } }
      older: events(first: $b) { edges { node { id } } }
    }`;
    assert.equal(requested(query, { a: 10, b: 5 }), 2 + 10 + (2 + 5));
    assert.equal(requested(query, { a: 1 }), 2 + 1 + (2 + 20));
  });

  it('expands fragments where they are spread', () => {
    const query = `
      query { a: users(first: 3) { ...Page } b: users(first: 4) { ...Page } }
      fragment Page on UserConnection { edges { node { ...U } } }
      fragment U on AnalyticsUser { id events(first: 2) { id } }`;
    // Each user: 1 + 2 events; a: 2 + 3 × 3; b: 2 + 4 × 3.
    assert.equal(requested(query), 2 + 3 * 3 + (2 + 4 * 3));
    const inline = '{ users(first: 3) { edges { node { ... on AnalyticsUser { events(first: 2) { id } } } } } }';
    assert.equal(requested(inline), 2 + 3 * (1 + 2));
  });

  it('multiplies nested lists', () => {
    const query = '{ users(first: 100) { edges { node { id events(first: 5) { type user { id } } } } } }';
    assert.equal(requested(query), 2 + 100 * (1 + 5 * (1 + 1)));
    assert.equal(
      requested('{ users(first: 10) { edges { node { events { id } } } } }'),
      2 + 10 * (1 + 10),
      'user events default 10',
    );
  });

  it('leaves out what @skip and @include leave out', () => {
    const query = `query($withUser: Boolean!) {
      events(first: 10) { edges { node { id user @include(if: $withUser) { id } } } }
      viewer @skip(if: true) { tenant }
    }`;
    assert.equal(requested(query, { withUser: true }), 2 + 10 * 2);
    assert.equal(requested(query, { withUser: false }), 2 + 10);
  });

  it('sizes statistics by their range and lists by their declared bounds', () => {
    const from = '2026-11-01T00:00:00Z';
    assert.equal(
      requested(`{ timeseries(interval: HOUR, from: "${from}", to: "2026-11-02T00:00:00Z") { count } }`),
      24,
    );
    assert.equal(
      requested(`{ timeseries(interval: HOUR, from: "${from}", to: "2026-11-01T10:30:00Z") { count } }`),
      11,
      'buckets touching the range',
    );
    assert.equal(requested(`{ dailyStats(from: "${from}", to: "2026-12-01T00:00:00Z") { day } }`), 30);
    assert.equal(
      requested(`{ timeseries(interval: MINUTE, from: "${from}", to: "2026-12-01T00:00:00Z") { count } }`),
      0,
      'refused by the service before any read',
    );
    assert.equal(requested('{ eventTypes { type } }'), 50);
    assert.equal(requested('{ eventTypes(first: 3) { type } }'), 3);
    assert.equal(requested('{ freshness { source } }'), 5);
  });

  it('prices mutations by their own cost, recordEvents by its events', () => {
    const events = Array.from({ length: 250 }, (_, i) => ({ type: 'x', messageId: String(i) }));
    const record = 'mutation($e: [EventInput!]!) { recordEvents(events: $e) { accepted errors { index } } }';
    assert.equal(requested(record, { e: events }), 3);
    assert.equal(requested(record, { e: events.slice(0, 1) }), 1);
    assert.equal(requested('mutation { recordEvent(input: { type: "x" }) { id } }'), 1);
    assert.equal(requested('mutation { createApiKey(name: "n", scopes: ["admin"]) { key apiKey { id } } }'), 10 + 1);
    assert.equal(requested('mutation { replayDeadLetters(limit: 1000) }'), 20);
    assert.equal(requested('subscription { metricUpdated(window: ONE_MINUTE) { count } }'), 10);
  });

  it('charges nothing for introspection', () => {
    assert.equal(requested('{ __schema { types { name fields { name type { name ofType { name } } } } } }'), 0);
    assert.equal(requested('{ __typename viewer { __typename tenant } }'), 1);
  });

  it('computes the actual cost from the lists returned, equal to the estimate when they are full', () => {
    const query = '{ users(first: 3) { edges { node { id events(first: 2) { id user { id } } } } } }';
    assert.equal(requested(query), 2 + 3 * (1 + 2 * 2));
    const user = (events: number) => ({
      node: { id: 'u', events: Array.from({ length: events }, () => ({ id: 'e', user: { id: 'u' } })) },
    });
    assert.equal(actual(query, { users: { edges: [user(2), user(2), user(2)] } }), requested(query));
    assert.equal(actual(query, { users: { edges: [user(1), user(0)] } }), 2 + (1 + 2) + 1);
    assert.equal(actual(query, { users: { edges: [] } }), 2);
    const aliased = '{ a: eventTypes(first: 5) { type } b: eventTypes(first: 5) { type } }';
    assert.equal(actual(aliased, { a: [{ type: 'x' }], b: [{ type: 'x' }, { type: 'y' }] }), 3);
    assert.equal(
      actual('{ event(id: "x") { id user { id } } }', { event: null }),
      1,
      'a lookup that found nothing still ran',
    );
    const fragment = 'query { users(first: 2) { ...P } } fragment P on UserConnection { edges { node { id } } }';
    assert.equal(actual(fragment, { users: { edges: [{ node: { id: 'a' } }] } }), 3);
  });

  it('refuses to start when a list field is not priced or a declared field is gone', () => {
    const extended = extendSchema(schema, parse('extend type Query { everything: [Event!]! }'));
    assert.throws(() => costModel(extended), /Query.everything is not declared/);
    const tiny = extendSchema(schema, parse('extend type Query { pagedThings(first: Int): EventConnection! }'));
    assert.doesNotThrow(() => costModel(tiny), 'a connection with first follows the page convention');
  });

  it('stops the analysis of an operation that expands into too many fields', () => {
    const levels = Array.from({ length: 14 }, (_, i) => `fragment F${i} on Viewer { ...F${i + 1} ...F${i + 1} }`);
    const query = `{ viewer { ...F0 } } ${levels.join(' ')} fragment F14 on Viewer { tenant }`;
    assert.throws(() => requested(query), TooManyNodesError);
  });
});
