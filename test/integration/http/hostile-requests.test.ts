import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startGateway, type RunningGateway } from '../../helpers/gateway.js';
import { isolatedEnv } from '../../helpers/test-env.js';

/**
 * Malformed and hostile requests, sent as an attacker would, against a production-mode gateway
 * through its public URL alone (fetch), so the file holds whatever serves HTTP underneath.
 * Every answer must be a 4xx (or a 200 with errors) whose codes are the contract's
 * (README, "Hardening"), never a 5xx or INTERNAL_SERVER_ERROR, and the replica stays ready.
 */

const KEY = 'hostile-admin-key';

/** The codes a client may be answered with for its own input (INTERNAL_SERVER_ERROR excluded). */
const CLIENT_CODES = new Set([
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'BAD_USER_INPUT',
  'COST_LIMIT_EXCEEDED',
  'RATE_LIMITED',
  'PAYLOAD_TOO_LARGE',
  'GRAPHQL_PARSE_FAILED',
  'GRAPHQL_VALIDATION_FAILED',
  'BAD_REQUEST',
  'PERSISTED_QUERY_NOT_FOUND',
  'PERSISTED_QUERY_NOT_SUPPORTED',
  'OPERATION_RESOLUTION_FAILURE',
]);

interface Answer {
  readonly status: number;
  readonly text: string;
  readonly json: unknown;
}

interface HostileCase {
  readonly name: string;
  /** Path and init of the request; the body is sent as given (a string) or JSON-encoded. */
  readonly send: () => { path?: string; method?: string; headers?: Record<string, string>; body?: unknown };
  /** What this case must answer besides the common rules: a code among the errors, a status. */
  readonly code?: string;
  readonly status?: number;
  /** For a batch of events: the index whose per-event error must carry this code. */
  readonly eventErrorAt?: number;
  /** Words the refusal must name (the argument, the limit). */
  readonly mentions?: RegExp;
  /** A non-GraphQL route answer (no JSON error body expected). */
  readonly plain?: boolean;
}

/** `levels` objects nested in each other, as JSON text: JSON.stringify itself would overflow the stack. */
const deep = (levels: number): RawJson => new RawJson(`${'{"a":'.repeat(levels)}{"leaf":1}${'}'.repeat(levels)}`);

/** JSON text spliced as it is into a body (see encode). */
class RawJson {
  constructor(readonly text: string) {}
}

/** JSON.stringify, with RawJson values written as their text. */
function encode(value: unknown): string {
  const raw: string[] = [];
  const json = JSON.stringify(value, (_key, v: unknown) =>
    v instanceof RawJson ? `\u0000raw${raw.push(v.text) - 1}` : v,
  );
  return json.replace(/"\\u0000raw(\d+)"/g, (_m, i: string) => raw[Number(i)]!);
}

const recordEvents =
  'mutation R($events: [EventInput!]!) { recordEvents(events: $events) { accepted ids errors { index code message } } }';
const recordEvent = 'mutation R($input: EventInput!) { recordEvent(input: $input) { id duplicate } }';
const post =
  (body: unknown, headers: Record<string, string> = {}) =>
  () => ({
    body,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}`, ...headers },
  });
const op = (query: string, variables?: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
  post({ query, variables, ...extra });
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

const CASES: HostileCase[] = [
  // The classes of issue 14, each once.
  {
    name: 'NUL in a query argument',
    send: op('query Q($id: ID!) { user(id: $id) { id } }', { id: 'u\u0000' }),
    code: 'BAD_USER_INPUT',
    mentions: /\bid\b/,
  },
  {
    name: 'NUL in a literal argument',
    send: op('{ events(filter: { type: "a\\u0000b" }) { edges { cursor } } }'),
    code: 'BAD_USER_INPUT',
    mentions: /filter\.type/,
  },
  {
    name: 'NUL in a nested field argument',
    send: op('{ user(id: "u1") { events(type: "x\\u0000") { id } } }'),
    code: 'BAD_USER_INPUT',
    mentions: /type/,
  },
  {
    name: 'NUL in createApiKey name',
    send: op('mutation { createApiKey(name: "k\\u0000", scopes: ["admin"]) { key } }'),
    code: 'BAD_USER_INPUT',
    mentions: /name/,
  },
  {
    name: 'NUL in an auditLog filter variable',
    send: op('query Q($f: AuditFilter) { auditLog(filter: $f) { edges { cursor } } }', { f: { action: '\u0000' } }),
    code: 'BAD_USER_INPUT',
    mentions: /filter\.action/,
  },
  {
    name: 'a lone surrogate in a query argument',
    send: op(
      'query Q($t: String) { dailyStats(from: "2026-01-01T00:00:00Z", to: "2026-01-02T00:00:00Z", type: $t) { day } }',
      { t: 'x\ud800' },
    ),
    code: 'BAD_USER_INPUT',
    mentions: /type/,
  },
  {
    name: 'NUL in an event userId',
    send: op(recordEvent, { input: { type: 'page', userId: 'u\u0000' } }),
    code: 'BAD_USER_INPUT',
    mentions: /userId/,
  },
  {
    name: 'NUL in an event messageId in a batch',
    send: op(recordEvents, { events: [{ type: 'ok' }, { type: 'page', messageId: 'm\u0000' }] }),
    eventErrorAt: 1,
    mentions: /messageId/,
  },
  {
    name: 'NUL in a properties value',
    send: op(recordEvents, { events: [{ type: 'page', properties: { a: 'x\u0000' } }] }),
    eventErrorAt: 0,
    mentions: /properties/,
  },
  {
    name: 'NUL in a properties key',
    send: op(recordEvents, { events: [{ type: 'page', properties: { 'k\u0000': 1 } }] }),
    eventErrorAt: 0,
    mentions: /properties/,
  },
  {
    name: 'a lone surrogate in properties',
    send: op(recordEvents, { events: [{ type: 'page', properties: { a: '\udc00' } }] }),
    eventErrorAt: 0,
    mentions: /properties/,
  },
  {
    name: 'properties nested 10,000 deep',
    send: op(recordEvents, { events: [{ type: 'ok' }, { type: 'page', properties: deep(10_000) }] }),
    eventErrorAt: 1,
    mentions: /properties.*deep|depth/,
  },
  {
    name: 'properties nested 10,000 deep in recordEvent',
    send: op(recordEvent, { input: { type: 'page', properties: deep(10_000) } }),
    code: 'BAD_USER_INPUT',
    mentions: /properties/,
  },
  {
    name: '1 MiB of properties',
    send: op(recordEvents, { events: [{ type: 'page', properties: { blob: 'x'.repeat(1024 * 1024) } }] }),
    eventErrorAt: 0,
    mentions: /32768|bytes/,
  },
  {
    name: 'an operationName naming no operation',
    send: op('query A { viewer { tenant } }', undefined, { operationName: 'Nope' }),
    status: 400,
    code: 'GRAPHQL_VALIDATION_FAILED',
    mentions: /Nope/,
  },
  {
    name: 'a subscription over HTTP POST',
    send: op('subscription { metricUpdated(window: ONE_MINUTE) { count } }'),
    status: 400,
    code: 'BAD_REQUEST',
    mentions: /WebSocket/i,
  },
  {
    name: '60 aliases of __typename',
    send: op(`{ ${Array.from({ length: 60 }, (_, i) => `t${i}: __typename`).join(' ')} }`),
    code: 'COST_LIMIT_EXCEEDED',
    mentions: /more aliases than the limit of 30/,
  },

  // Bodies.
  { name: 'a body that is not JSON', send: post('{"query": '), status: 400 },
  { name: 'an empty body', send: post(''), status: 400 },
  { name: 'a JSON number as the body', send: post('42'), status: 400 },
  { name: 'a JSON string as the body', send: post('"{ viewer { tenant } }"'), status: 400 },
  { name: 'a JSON null as the body', send: post('null'), status: 400 },
  { name: 'an empty batch', send: post('[]'), status: 400 },
  { name: 'a batch of non-objects', send: post('[1, "x", null]'), status: 400 },
  {
    name: 'a batch over MAX_BATCH_OPERATIONS',
    send: post(JSON.stringify(Array.from({ length: 11 }, () => ({ query: '{ viewer { tenant } }' })))),
    code: 'COST_LIMIT_EXCEEDED',
  },
  { name: 'query is a number', send: post({ query: 42 }), status: 400 },
  { name: 'query is missing', send: post({ variables: {} }), status: 400 },
  { name: 'variables is a string', send: post({ query: '{ viewer { tenant } }', variables: 'x' }), status: 400 },
  { name: 'variables is an array', send: post({ query: '{ viewer { tenant } }', variables: [1] }), status: 400 },
  { name: 'extensions is a string', send: post({ query: '{ viewer { tenant } }', extensions: 'x' }), status: 400 },
  {
    name: 'operationName is an object',
    send: post({ query: '{ viewer { tenant } }', operationName: { a: 1 } }),
    status: 400,
  },
  {
    name: '__proto__ in variables',
    send: post('{"query":"query Q($id: ID!) { user(id: $id) { id } }","variables":{"__proto__":{"id":"x"},"id":"u1"}}'),
  },
  {
    name: 'a body over MAX_BODY_BYTES',
    send: post({ query: `{ viewer { tenant } } #${'x'.repeat(6 * 1024 * 1024)}` }),
    status: 413,
    code: 'PAYLOAD_TOO_LARGE',
  },

  // Documents.
  { name: 'a syntax error', send: op('{ viewer { '), code: 'GRAPHQL_PARSE_FAILED' },
  {
    name: 'over the token limit',
    send: op(`{ viewer { ${'tenant '.repeat(20_000)} } }`),
    code: 'GRAPHQL_PARSE_FAILED',
  },
  { name: 'an unknown field', send: op('{ nope }'), code: 'GRAPHQL_VALIDATION_FAILED' },
  {
    name: 'a fragment cycle',
    send: op('{ viewer { ...A } } fragment A on Viewer { ...B } fragment B on Viewer { ...A }'),
    code: 'GRAPHQL_VALIDATION_FAILED',
  },
  {
    name: 'two operations and no operationName',
    send: op('query A { viewer { tenant } } query B { viewer { tenant } }'),
    status: 400,
    code: 'GRAPHQL_VALIDATION_FAILED',
  },
  {
    name: 'introspection in production',
    send: op('{ __schema { types { name } } }'),
    code: 'GRAPHQL_VALIDATION_FAILED',
  },
  {
    name: 'nested 40 deep',
    send: op(`{ user(id: "u") { ${'events(first: 1) { user { '.repeat(20)}id${' } }'.repeat(20)} } }`),
    code: 'COST_LIMIT_EXCEEDED',
  },
  {
    name: '40 aliases of a field',
    send: op(`{ ${Array.from({ length: 40 }, (_, i) => `v${i}: viewer { tenant }`).join(' ')} }`),
    code: 'COST_LIMIT_EXCEEDED',
  },
  {
    name: '100 directives',
    send: op(`{ viewer { ${'... on Viewer @include(if: true) { tenant } '.repeat(100)} } }`),
    code: 'COST_LIMIT_EXCEEDED',
  },
  { name: 'an unknown directive', send: op('{ viewer @nope { tenant } }'), code: 'GRAPHQL_VALIDATION_FAILED' },

  // Argument values.
  {
    name: 'a string for an Int',
    send: op('query Q($n: Int) { events(first: $n) { edges { cursor } } }', { n: 'ten' }),
    code: 'BAD_USER_INPUT',
  },
  {
    name: 'an Int beyond 32 bits',
    send: op('query Q($n: Int) { events(first: $n) { edges { cursor } } }', { n: 2 ** 40 }),
    code: 'BAD_USER_INPUT',
  },
  { name: 'a negative first', send: op('{ events(first: -1) { edges { cursor } } }') },
  { name: 'a huge first', send: op('{ users(first: 2147483647) { totalCount } }') },
  {
    name: 'an infinite value (1e400)',
    send: post(
      '{"query":"mutation R($input: EventInput!) { recordEvent(input: $input) { id } }","variables":{"input":{"type":"p","value":1e400}}}',
    ),
    code: 'BAD_USER_INPUT',
  },
  {
    name: 'an invalid DateTime',
    send: op('{ dailyStats(from: "2026-13-45T00:00:00Z", to: "2026-01-01T00:00:00Z") { day } }'),
    status: 400,
  },
  {
    name: 'an invalid DateTime variable',
    send: op('query Q($f: DateTime!) { dailyStats(from: $f, to: "2026-01-01T00:00:00Z") { day } }', { f: 'yesterday' }),
    code: 'BAD_USER_INPUT',
  },
  {
    name: 'a DateTime out of range',
    send: op('query Q($f: DateTime!) { timeseries(interval: DAY, from: $f, to: "2026-01-01T00:00:00Z") { bucket } }', {
      f: '+275760-09-13T00:00:01Z',
    }),
    code: 'BAD_USER_INPUT',
  },
  {
    name: 'an event timestamp of year 0',
    send: op(recordEvent, { input: { type: 'p', timestamp: '0000-01-01T00:00:00Z' } }),
  },
  {
    name: 'from after to',
    send: op('{ timeseries(interval: MINUTE, from: "2026-01-02T00:00:00Z", to: "2026-01-01T00:00:00Z") { bucket } }'),
    code: 'BAD_USER_INPUT',
  },
  {
    name: 'a 100-year MINUTE timeseries',
    send: op('{ timeseries(interval: MINUTE, from: "1970-01-01T00:00:00Z", to: "2070-01-01T00:00:00Z") { bucket } }'),
  },
  {
    name: 'a garbage cursor',
    send: op('{ events(first: 1, after: "!!!not-base64") { edges { cursor } } }'),
    code: 'BAD_USER_INPUT',
  },
  {
    name: 'a cursor of odd JSON',
    send: op(
      `{ events(first: 1, after: "${Buffer.from('{"t":"x","i":[1,2]}').toString('base64url')}") { edges { cursor } } }`,
    ),
    code: 'BAD_USER_INPUT',
  },
  { name: 'an id that is no uuid', send: op('{ event(id: "not-a-uuid") { id } }') },
  {
    name: 'an unknown enum value',
    send: op('{ timeseries(interval: WEEK, from: "2026-01-01T00:00:00Z", to: "2026-01-02T00:00:00Z") { bucket } }'),
    code: 'GRAPHQL_VALIDATION_FAILED',
  },
  {
    name: 'recordEvents over INGEST_MAX_BATCH',
    send: op(recordEvents, { events: Array.from({ length: 1001 }, () => ({ type: 'p' })) }),
    code: 'PAYLOAD_TOO_LARGE',
  },
  {
    name: 'properties that is an array',
    send: op(recordEvents, { events: [{ type: 'p', properties: [1, 2] }] }),
    eventErrorAt: 0,
  },
  { name: 'an event type with spaces', send: op(recordEvents, { events: [{ type: 'a b' }] }), eventErrorAt: 0 },
  {
    name: 'a 10,000-character userId',
    send: op(recordEvents, { events: [{ type: 'p', userId: 'u'.repeat(10_000) }] }),
    eventErrorAt: 0,
  },
  {
    name: 'an unknown scope',
    send: op('mutation { createApiKey(name: "k", scopes: ["root"]) { key } }'),
    code: 'BAD_USER_INPUT',
  },
  { name: 'revoke an id that is no uuid', send: op('mutation { revokeApiKey(id: "../../etc") { id } }') },
  { name: 'replayDeadLetters of a million', send: op('mutation { replayDeadLetters(limit: 1000000) }') },

  // Headers and methods.
  {
    name: 'no Authorization',
    send: () => ({ body: { query: '{ viewer { tenant } }' }, headers: { 'content-type': 'application/json' } }),
    code: 'UNAUTHENTICATED',
  },
  {
    name: 'Basic credentials',
    send: post({ query: '{ viewer { tenant } }' }, { authorization: 'Basic YTpi' }),
    status: 401,
    code: 'UNAUTHENTICATED',
  },
  {
    name: 'a 600-character bearer token',
    send: post({ query: '{ viewer { tenant } }' }, { authorization: `Bearer ${'k'.repeat(600)}` }),
    status: 401,
    code: 'UNAUTHENTICATED',
  },
  {
    name: 'an unknown key',
    send: post({ query: '{ viewer { tenant } }' }, { authorization: 'Bearer agw_0000000000000000000000000000' }),
    status: 401,
    code: 'UNAUTHENTICATED',
  },
  {
    name: 'text/plain (CSRF prevention)',
    send: () => ({
      body: '{"query":"{ viewer { tenant } }"}',
      headers: { 'content-type': 'text/plain', authorization: `Bearer ${KEY}` },
    }),
    status: 400,
  },
  {
    name: 'no content-type',
    send: () => ({ body: '{"query":"{ viewer { tenant } }"}', headers: { authorization: `Bearer ${KEY}` } }),
    status: 400,
  },
  {
    name: 'an unknown charset',
    send: post('{"query":"{ viewer { tenant } }"}', { 'content-type': 'application/json; charset=klingon' }),
    status: 415,
  },
  {
    name: 'a mutation over GET',
    send: () => ({
      path: `/graphql?query=${encodeURIComponent('mutation { replayDeadLetters }')}`,
      method: 'GET',
      headers: { authorization: `Bearer ${KEY}`, 'apollo-require-preflight': '1' },
    }),
    status: 405,
  },
  {
    name: 'GET without a query',
    send: () => ({
      path: '/graphql',
      method: 'GET',
      headers: { authorization: `Bearer ${KEY}`, 'apollo-require-preflight': '1', accept: 'application/json' },
    }),
    status: 400,
  },
  {
    name: 'GET with variables that are not JSON',
    send: () => ({
      path: `/graphql?query=${encodeURIComponent('{ viewer { tenant } }')}&variables=%7Bnope`,
      method: 'GET',
      headers: { authorization: `Bearer ${KEY}`, 'apollo-require-preflight': '1' },
    }),
    status: 400,
  },
  {
    name: 'a persisted query hash nobody stored',
    send: post({ extensions: { persistedQuery: { version: 1, sha256Hash: sha256('never sent') } } }),
    code: 'PERSISTED_QUERY_NOT_FOUND',
  },
  {
    name: 'a persisted query whose hash does not match',
    send: post({
      query: '{ viewer { tenant } }',
      extensions: { persistedQuery: { version: 1, sha256Hash: sha256('other') } },
    }),
    status: 400,
    code: 'BAD_REQUEST',
  },
  {
    name: 'PUT /graphql',
    send: () => ({ path: '/graphql', method: 'PUT', body: '{}', headers: { 'content-type': 'application/json' } }),
    plain: true,
  },
  {
    name: 'an x-request-id with control characters',
    send: post({ query: '{ viewer { tenant } }' }, { 'x-request-id': 'a\tb'.repeat(100) }),
  },
];

async function send(url: string, c: HostileCase): Promise<Answer> {
  const request = c.send();
  const body =
    request.body === undefined ? undefined : typeof request.body === 'string' ? request.body : encode(request.body);
  const response = await fetch(`${url}${request.path ?? '/graphql'}`, {
    method: request.method ?? 'POST',
    headers: request.headers,
    ...(body !== undefined && request.method !== 'GET' ? { body } : {}),
  });
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, text, json };
}

interface GraphqlBody {
  data?: Record<string, unknown> | null;
  errors?: Array<{ message: string; extensions?: { code?: unknown } }>;
}

function judge(c: HostileCase, answer: Answer): void {
  const where = `${c.name}: ${answer.status} ${answer.text.slice(0, 400)}`;
  assert.ok(answer.status < 500, `5xx for ${where}`);
  assert.doesNotMatch(answer.text, /INTERNAL_SERVER_ERROR/, where);
  if (c.status !== undefined) assert.equal(answer.status, c.status, where);
  if (c.plain) return;
  const body = answer.json as GraphqlBody | undefined;
  if (answer.status >= 400) {
    assert.ok(body?.errors?.length, `a 4xx without GraphQL errors for ${where}`);
  }
  for (const error of body?.errors ?? []) {
    assert.ok(CLIENT_CODES.has(String(error.extensions?.code)), `unclear code for ${where}`);
  }
  if (c.code !== undefined) {
    assert.ok(
      body?.errors?.some((e) => e.extensions?.code === c.code),
      `expected ${c.code} for ${where}`,
    );
  }
  if (c.eventErrorAt !== undefined) {
    const payload = body?.data?.recordEvents as
      { errors: Array<{ index: number; code: string; message: string }> } | undefined;
    const error = payload?.errors.find((e) => e.index === c.eventErrorAt);
    assert.equal(error?.code, 'BAD_USER_INPUT', `expected BAD_USER_INPUT at index ${c.eventErrorAt} for ${where}`);
    if (c.mentions) assert.match(error!.message, c.mentions, where);
  } else if (c.mentions) {
    assert.match(body?.errors?.map((e) => e.message).join(' ') ?? '', c.mentions, where);
  }
}

describe('hostile requests', () => {
  const isolation = isolatedEnv('hostile');
  let gateway: RunningGateway;

  before(async () => {
    gateway = await startGateway(isolation.env({ NODE_ENV: 'production', BOOTSTRAP_API_KEY: KEY }));
  });
  after(async () => {
    await gateway?.stop();
    await isolation.cleanup();
  });

  it(`sends ${CASES.length} of them`, () => {
    assert.ok(CASES.length >= 40);
  });

  for (const c of CASES) {
    it(`answers ${c.name} with a client error of the contract`, async () => {
      judge(c, await send(gateway.url, c));
    });
  }

  it('stays ready after all of them, twice over', async () => {
    for (const c of CASES) await send(gateway.url, c);
    const ready = await fetch(`${gateway.url}/ready`);
    assert.equal(ready.status, 200, await ready.text());
  });
});
