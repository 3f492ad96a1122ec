import { parse, subscribe, type ExecutionArgs, type ExecutionResult } from 'graphql';
import { parseArgs } from 'node:util';
import { buildGatewaySchema } from '../src/app/schema.js';
import { createMetrics } from '../src/observability/metrics.js';
import { createSubscriptionFanout } from '../src/realtime/subscription-fanout.js';

/**
 * bench:fanout — CPU per window push on one replica, in one process, no sockets: N subscribers of
 * one channel, each with its own source stream fed the same snapshot object, as live-feed.ts does.
 * "per subscriber" is graphql-js's subscribe (one execution per subscriber per push) plus the
 * envelope graphql-ws stringifies for each; "shared" is subscription-fanout.ts (one execution and
 * one JSON per push, the subscription id spliced into each envelope), and, between the two, the
 * shared result with graphql-ws stringifying each envelope. The socket write itself is left out:
 * it is the same in all three.
 *
 * Options: --subscribers 1000 --pushes 200 (--quick: 200 and 50)
 */
const { values } = parseArgs({
  options: {
    subscribers: { type: 'string', default: '1000' },
    pushes: { type: 'string', default: '200' },
    quick: { type: 'boolean', default: false },
  },
});
const subscribers = values.quick ? 200 : Number(values.subscribers);
const pushes = values.quick ? 50 : Number(values.pushes);

/** A source stream that is handed values from outside, one at a time. */
function source() {
  let waiting: ((r: IteratorResult<unknown>) => void) | undefined;
  const held: unknown[] = [];
  const it: AsyncIterableIterator<unknown> & { push(v: unknown): void } = {
    push(value) {
      if (waiting) {
        const w = waiting;
        waiting = undefined;
        w({ value, done: false });
      } else held.push(value);
    },
    next: () =>
      held.length
        ? Promise.resolve({ value: held.shift(), done: false })
        : new Promise((resolve) => (waiting = resolve)),
    return: async () => ({ value: undefined, done: true }),
    [Symbol.asyncIterator]: () => it,
  };
  return it;
}

const schema = await buildGatewaySchema({ publish: () => undefined, subscribe: () => source() });
const document = parse(
  'subscription { metricUpdated(window: ONE_MINUTE) { type window start end count sum min max avg p50 p95 p99 uniqueUsers revision final } }',
);
const viewer = { tenantId: 't1', keyId: 'k1', keyName: 'bench', scopes: ['analytics:read'] };

async function run(mode: 'per-subscriber' | 'shared-result' | 'shared-bytes'): Promise<number> {
  const shared = mode !== 'per-subscriber';
  const fanout = createSubscriptionFanout({ metrics: createMetrics() });
  const sockets = Array.from({ length: subscribers }, () => {
    const sent: unknown[] = [];
    const socket = { send: (data: unknown) => sent.push(data), sent };
    fanout.attach(socket as never);
    return socket;
  });
  const sources = sockets.map(() => source());
  const streams = await Promise.all(
    sources.map(async (s) => {
      const args: ExecutionArgs = {
        schema,
        document,
        contextValue: { viewer, services: { realtime: { windowUpdates: () => s } } },
      };
      const r = shared ? await fanout.subscribe(args) : await subscribe(args);
      return r as AsyncIterableIterator<ExecutionResult>;
    }),
  );
  const started = process.hrtime.bigint();
  for (let p = 0; p < pushes; p++) {
    const snapshot = {
      type: null,
      window: 'ONE_MINUTE',
      start: new Date(),
      end: new Date(),
      count: 1000 + p,
      sum: 1234.5 + p,
      min: 0.1,
      max: 99.9,
      avg: 12.3,
      p50: 10.1,
      p95: 80.2,
      p99: 95.3,
      uniqueUsers: 4000,
      revision: p,
      final: false,
    };
    for (const s of sources) s.push(snapshot);
    for (let i = 0; i < subscribers; i++) {
      const { value } = await streams[i]!.next();
      const id = `0b5f4f5e-7a8e-4c1e-9d0a-${String(i).padStart(12, '0')}`;
      // What graphql-ws does with each result: onNext, then stringify the envelope and send it.
      const payload = (mode === 'shared-bytes' ? fanout.prepare(sockets[i]!, id, value!) : undefined) ?? value;
      sockets[i]!.send(JSON.stringify({ id, type: 'next', payload }));
      sockets[i]!.sent.length = 0;
    }
  }
  return Number(process.hrtime.bigint() - started) / 1e3 / (pushes * subscribers);
}

console.log(`bench:fanout  ${subscribers} subscribers of one channel, ${pushes} pushes, one process, no sockets`);
for (let round = 0; round < 2; round++) {
  const perSubscriber = await run('per-subscriber');
  const sharedResult = await run('shared-result');
  const sharedBytes = await run('shared-bytes');
  console.log(
    `  round ${round + 1}, µs per (push, subscriber): per subscriber ${perSubscriber.toFixed(2)}, ` +
      `shared result (envelope stringified per subscriber) ${sharedResult.toFixed(2)}, shared bytes ${sharedBytes.toFixed(2)}; ` +
      `CPU per push at ${subscribers}: ${((perSubscriber * subscribers) / 1000).toFixed(1)} / ${((sharedResult * subscribers) / 1000).toFixed(1)} / ${((sharedBytes * subscribers) / 1000).toFixed(1)} ms`,
  );
}
