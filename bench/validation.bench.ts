import { parse, execute, validate, type DocumentNode } from 'graphql';
import { pino } from 'pino';
import type { GatewayContext, Services } from '../src/app/context.js';
import { buildGatewaySchema } from '../src/app/schema.js';
import { normalizeEvent, type EventInputLike } from '../src/ingest/event-validation.js';

/**
 * bench:validation — what checking a 1000-event recordEvents costs on the request path, split
 * into its steps: JSON.parse of the body, GraphQL variable coercion plus type-graphql's
 * conversion of each EventInput into a class instance, and our own per-event checks
 * (normalizeEvent). The resolver's service is replaced by one that only runs those checks, so
 * the figures contain CPU work alone, no Redis or Postgres round trip.
 */
const BATCH = 1000;
const ROUNDS = 200;
const tenantId = '0b5f4f5e-7a8e-4c1e-9d0a-2f6f1c3b9a11';
const types = ['page_view', 'click', 'signup', 'purchase', 'search', 'share'];
const events = Array.from({ length: BATCH }, (_, i) => ({
  type: types[i % types.length],
  userId: `user-${i % 97}`,
  sessionId: `session-${i % 31}`,
  messageId: `msg-${i}-${Math.random().toString(36).slice(2)}`,
  timestamp: new Date(Date.now() - i * 1000).toISOString(),
  value: Math.random() * 100,
  properties: { path: `/page/${i % 50}`, referrer: 'https://example.com', plan: i % 3 ? 'free' : 'pro' },
}));
const body = JSON.stringify({
  query: 'mutation($e:[EventInput!]!){ recordEvents(events:$e){ accepted duplicates errors { index } } }',
  variables: { e: events },
});

function time(label: string, fn: () => unknown | Promise<unknown>) {
  return async () => {
    for (let i = 0; i < 20; i++) await fn();
    const started = process.hrtime.bigint();
    for (let i = 0; i < ROUNDS; i++) await fn();
    const ms = Number(process.hrtime.bigint() - started) / 1e6 / ROUNDS;
    return { label, ms };
  };
}

const schema = await buildGatewaySchema();
const document: DocumentNode = parse(JSON.parse(body).query);
if (validate(schema, document).length) throw new Error('the benchmark query does not validate');
const checksOnly = {
  async record(tenant: string, inputs: readonly EventInputLike[]) {
    const receipt = { tenantId: tenant, receivedAt: Date.now() };
    let accepted = 0;
    for (const input of inputs) if (normalizeEvent(input, receipt).ok) accepted++;
    return { accepted, duplicates: 0, ids: [], duplicate: [], errors: [] };
  },
};
const context: GatewayContext = {
  viewer: { tenantId, tenantSlug: 'bench', keyId: 'k', keyName: 'bench', keyPrefix: 'k', scopes: ['events:write'] },
  requestId: 'bench',
  logger: pino({ level: 'silent' }),
  services: { ingest: checksOnly } as unknown as Services,
  analytics: null,
};

const steps = [
  time('JSON.parse of the request body (express.json)', () => JSON.parse(body)),
  time('our per-event checks alone (normalizeEvent ×1000)', () =>
    checksOnly.record(
      tenantId,
      JSON.parse(body).variables.e.map((e: EventInputLike & { timestamp: string }) => ({
        ...e,
        timestamp: new Date(e.timestamp),
      })),
    ),
  ),
  time('GraphQL execute: coercion + type-graphql input conversion + checks', async () => {
    const result = await execute({
      schema,
      document,
      variableValues: JSON.parse(body).variables,
      contextValue: context,
    });
    if (result.errors) throw result.errors[0];
  }),
];

console.log(
  `bench:validation  one recordEvents of ${BATCH} events (${(body.length / 1024).toFixed(0)} KiB body), mean of ${ROUNDS} rounds\n`,
);
const results = [];
for (const step of steps) results.push(await step());
for (const r of results)
  console.log(
    `${r.label.padEnd(70)} ${r.ms.toFixed(2).padStart(7)} ms/batch  ${((r.ms * 1000) / BATCH).toFixed(2).padStart(6)} µs/event`,
  );
const [parseCost, checks, full] = results;
console.log(
  `\nGraphQL coercion and type-graphql conversion, beyond JSON.parse and our checks: ${(full!.ms - checks!.ms).toFixed(2)} ms/batch`,
);
console.log(
  `share of the full path spent in our checks: ${(((checks!.ms - parseCost!.ms) / full!.ms) * 100).toFixed(0)}%`,
);
