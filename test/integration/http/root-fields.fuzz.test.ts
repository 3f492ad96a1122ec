import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import {
  buildSchema,
  getNamedType,
  isEnumType,
  isInputObjectType,
  isLeafType,
  isListType,
  isNonNullType,
  isObjectType,
  type GraphQLArgument,
  type GraphQLField,
  type GraphQLInputType,
  type GraphQLObjectType,
} from 'graphql';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { startGateway, type RunningGateway } from '../../helpers/gateway.js';
import { isolatedEnv } from '../../helpers/test-env.js';

/**
 * Generated hostile values for every argument of every root field (Query, Mutation, Subscription,
 * read from schema/schema.graphql), sent over HTTP and over WebSocket. Whatever the values, the
 * answer is a client error of the contract or data: never a 5xx, never INTERNAL_SERVER_ERROR,
 * never an internal close of the socket, and the replica stays ready.
 *
 * Short and seed-fixed by default (CI); `FUZZ_RUNS=100000 FUZZ_SEED=<n>` for a long run.
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const SEED = Number(process.env.FUZZ_SEED ?? 14);
const KEY = 'agk_fuzz-suite-admin-key-000000000000000000000000';

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
]);

const schema = buildSchema(readFileSync('schema/schema.graphql', 'utf8'));

// Text Postgres cannot store, text that looks like an attack, text at and past the contract's lengths.
const hostileString = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.constantFrom(
    '',
    ' ',
    '\u0000',
    'a\u0000b',
    '\ud800',
    'x\udfff',
    '\ud83d\ude00',
    "' OR 1=1 --",
    '../../etc/passwd',
    '%00',
    '{"a":1}',
    'x'.repeat(129),
    'u'.repeat(257),
    'y'.repeat(70_000),
  ),
);
const hostileInt = fc.oneof(
  fc.integer(),
  fc.constantFrom(0, -1, 2 ** 31 - 1, 2 ** 31, -(2 ** 31) - 1, 2 ** 53, -(2 ** 53), 1e308, 0.5, -0),
);
const hostileFloat = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(1e308, -1e308, 5e-324),
);
const hostileDate = fc.oneof(
  fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
  fc.constantFrom(
    '0000-01-01T00:00:00Z',
    '+275760-09-13T00:00:00.000Z',
    '-271821-04-20T00:00:00.000Z',
    '2026-02-30T00:00:00Z',
    '2026-13-01T00:00:00Z',
    'yesterday',
    '1970-01-01T00:00:00Z',
    '9999-12-31T23:59:59.999Z',
  ),
);
const cursor = fc.oneof(
  fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? 'null').toString('base64url')),
  fc.base64String(),
  hostileString,
);
const deepObject = fc.integer({ min: 1, max: 60 }).map((depth) => {
  let value: unknown = { leaf: '\u0000' };
  for (let i = 0; i < depth; i++) value = { a: value };
  return value;
});
const hostileJson = fc.oneof(
  fc.jsonValue(),
  fc.dictionary(hostileString, fc.jsonValue(), { maxKeys: 5 }),
  deepObject,
  fc.constant({ blob: 'z'.repeat(40 * 1024) }),
);
/** Anything at all, for values of the wrong type. */
const wrongType = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  hostileString,
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.object({ maxDepth: 1 }),
);

function valueFor(type: GraphQLInputType, name: string, depth = 0): fc.Arbitrary<unknown> {
  const right = ((): fc.Arbitrary<unknown> => {
    if (isNonNullType(type)) return valueFor(type.ofType, name, depth);
    if (isListType(type)) {
      const item = valueFor(type.ofType, name, depth + 1);
      return fc.oneof(
        { weight: 4, arbitrary: fc.array(item, { maxLength: 4 }) },
        { weight: 1, arbitrary: fc.array(item, { minLength: 1001, maxLength: 1003 }) },
        { weight: 1, arbitrary: item },
      );
    }
    if (isEnumType(type)) return fc.oneof(fc.constantFrom(...type.getValues().map((v) => v.name)), hostileString);
    if (isInputObjectType(type)) {
      if (depth > 3) return fc.constant({});
      const fields = Object.values(type.getFields());
      return fc
        .record(Object.fromEntries(fields.map((f) => [f.name, valueFor(f.type, f.name, depth + 1)])), {
          requiredKeys: [],
        })
        .chain((record) => fc.oneof(fc.constant(record), fc.constant({ ...record, unknownField: 1 })));
    }
    switch (getNamedType(type).name) {
      case 'Int':
      case 'SafeInt':
        return hostileInt;
      case 'Float':
        return hostileFloat;
      case 'DateTime':
        return hostileDate;
      case 'JSON':
        return hostileJson;
      case 'Boolean':
        return fc.boolean();
      default:
        return name === 'after' ? cursor : hostileString;
    }
  })();
  // Mostly values of the declared type, sometimes anything, sometimes nothing.
  return fc.oneof(
    { weight: 8, arbitrary: right },
    { weight: 1, arbitrary: wrongType },
    { weight: 1, arbitrary: fc.constant(undefined) },
  );
}

/** The smallest selection that is valid: `__typename`, which every object type has. */
function selection(field: GraphQLField<unknown, unknown>): string {
  return isLeafType(getNamedType(field.type)) ? '' : ' { __typename }';
}

interface Sample {
  readonly root: 'query' | 'mutation' | 'subscription';
  readonly field: string;
  readonly document: string;
  readonly variables: Record<string, unknown>;
  readonly transport: 'http' | 'ws';
}

function samplesOf(root: Sample['root'], type: GraphQLObjectType | null | undefined): fc.Arbitrary<Sample>[] {
  if (!type) return [];
  return Object.values(type.getFields()).map((field) => {
    const args: readonly GraphQLArgument[] = field.args;
    const definitions = args.map((a) => `$${a.name}: ${String(a.type)}`).join(', ');
    const uses = args.map((a) => `${a.name}: $${a.name}`).join(', ');
    const document = `${root} Fuzz${definitions ? `(${definitions})` : ''} { ${field.name}${uses ? `(${uses})` : ''}${selection(field)} }`;
    return fc.record({
      root: fc.constant(root),
      field: fc.constant(field.name),
      document: fc.constant(document),
      variables: fc.record(Object.fromEntries(args.map((a) => [a.name, valueFor(a.type, a.name)]))),
      // Subscriptions are served over WebSocket only; over HTTP they are refused (BAD_REQUEST).
      transport:
        root === 'subscription'
          ? fc.constantFrom<'http' | 'ws'>('ws', 'ws', 'http')
          : fc.constantFrom<'http' | 'ws'>('http', 'ws'),
    });
  });
}

const roots: fc.Arbitrary<Sample>[] = [
  ...samplesOf('query', schema.getQueryType()),
  ...samplesOf('mutation', schema.getMutationType()),
  ...samplesOf('subscription', schema.getSubscriptionType()),
];

interface ErrorLike {
  message?: string;
  extensions?: { code?: unknown };
}

function judgeErrors(errors: readonly ErrorLike[] | undefined, where: string): void {
  for (const error of errors ?? []) {
    assert.ok(
      CLIENT_CODES.has(String(error.extensions?.code)),
      `unclear or internal code for ${where}: ${JSON.stringify(error).slice(0, 300)}`,
    );
  }
}

async function overHttp(url: string, sample: Sample): Promise<void> {
  const response = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
    body: JSON.stringify({ query: sample.document, variables: sample.variables }),
  });
  const text = await response.text();
  const where = `${sample.document} ${JSON.stringify(sample.variables).slice(0, 300)} -> ${response.status} ${text.slice(0, 300)}`;
  assert.ok(response.status < 500, `5xx for ${where}`);
  assert.doesNotMatch(text, /INTERNAL_SERVER_ERROR/, where);
  const body = JSON.parse(text) as {
    errors?: ErrorLike[];
    data?: Record<string, { errors?: Array<{ code?: string }> }> | null;
  };
  judgeErrors(body.errors, where);
  for (const e of body.data?.recordEvents?.errors ?? []) assert.equal(e.code, 'BAD_USER_INPUT', where);
}

/** One operation over graphql-ws: the first result or error, then unsubscribed. */
function overWebSocket(client: Client, sample: Sample): Promise<void> {
  const where = `ws ${sample.document} ${JSON.stringify(sample.variables).slice(0, 300)}`;
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      unsubscribe();
      try {
        fn();
        resolve();
      } catch (err) {
        reject(err);
      }
    };
    // A subscription with nothing to push yet is fine: it was accepted.
    const timer = setTimeout(() => finish(() => undefined), 300);
    const unsubscribe = client.subscribe(
      { query: sample.document, variables: sample.variables },
      {
        next: (result) =>
          finish(() => {
            assert.doesNotMatch(
              JSON.stringify(result),
              /INTERNAL_SERVER_ERROR/,
              `${where} -> ${JSON.stringify(result.errors?.filter((e) => e.extensions?.code === 'INTERNAL_SERVER_ERROR') ?? result).slice(0, 400)}`,
            );
            judgeErrors(result.errors as ErrorLike[] | undefined, where);
          }),
        error: (err) =>
          finish(() => {
            if (Array.isArray(err)) return judgeErrors(err as ErrorLike[], where);
            const code = (err as { code?: number }).code;
            // A socket closed by the server for a fault of its own (4500 internal error, 1011).
            assert.ok(code === undefined || (code !== 4500 && code !== 1011), `closed with ${code} for ${where}`);
            if (!(err instanceof Error) && code === undefined) judgeErrors([err as ErrorLike], where);
          }),
        complete: () => finish(() => undefined),
      },
    );
  });
}

describe(`fuzzing every argument of every root field (${RUNS} runs, seed ${SEED})`, () => {
  const isolation = isolatedEnv('fuzz');
  let gateway: RunningGateway;
  let ws: Client;

  before(async () => {
    gateway = await startGateway(
      isolation.env({
        NODE_ENV: 'production',
        BOOTSTRAP_API_KEY: KEY,
        // Budgets are not what is fuzzed: they would answer RATE_LIMITED before the arguments are looked at.
        COST_BUDGET_CAPACITY: '1000000000',
        COST_BUDGET_RESTORE_PER_MINUTE: '1000000000',
        WS_MAX_SUBSCRIPTIONS_PER_CONNECTION: '1000',
        WS_MAX_SUBSCRIPTIONS_PER_KEY: '100000',
      }),
    );
    ws = createClient({
      url: `${gateway.url.replace('http', 'ws')}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${KEY}` },
      retryAttempts: 0,
      lazy: false,
    });
  });
  after(async () => {
    await ws?.dispose();
    await gateway?.stop();
    await isolation.cleanup();
  });

  it('answers every generated request with data or a client error of the contract', async () => {
    assert.ok(roots.length >= 15, `${roots.length} root fields`);
    const outcome = await fc.check(
      fc.asyncProperty(fc.oneof(...roots), async (sample) => {
        if (sample.transport === 'http') await overHttp(gateway.url, sample);
        else await overWebSocket(ws, sample);
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
    // The report names the sample; the reason is the assertion's own message.
    if (outcome.failed) assert.fail(`${fc.defaultReportMessage(outcome)}\n${String(outcome.errorInstance)}`);
  });

  it('is still ready afterwards', async () => {
    const ready = await fetch(`${gateway.url}/ready`);
    assert.equal(ready.status, 200, await ready.text());
  });
});
