import {
  createSourceEventStream,
  execute,
  getOperationAST,
  print,
  type ExecutionArgs,
  type ExecutionResult,
} from 'graphql';
import type { WebSocket } from 'ws';
import type { RequestContext } from '../auth/request-context.js';
import type { Metrics } from '../observability/metrics.js';

type Results = Map<string, ExecutionResult | Promise<ExecutionResult>>;

/**
 * One execution and one serialization per pushed message and selection, shared by every
 * subscriber of that channel on this replica.
 *
 * graphql-js's `subscribe` executes the selection set once per message per subscriber. Here each
 * subscriber still has its own source stream (realtime.service.ts: its own first snapshot, its own
 * coalescing and drop bounds when it reads slowly), but the messages in them are the very objects
 * the live feed decoded once per Redis message (live-feed.ts), so the result is memoized on the
 * message object, keyed by the selection: the tenant and scopes of the viewer (authorization may
 * differ between them, and one tenant's result never serves another), the printed document, the
 * operation name and the variables. The first subscriber to take a message executes it with its
 * own context (same tenant, same scopes); the rest reuse the result.
 *
 * The JSON of a shared result is also made once: graphql-ws stringifies every `next` envelope
 * itself, so `prepare` (its onNext hook) answers an empty placeholder payload, and the socket's
 * `send`, wrapped by `attach`, swaps that small envelope for the shared payload with this
 * subscription's id spliced in.
 */
export function createSubscriptionFanout(deps: { metrics: Metrics }) {
  const { metrics } = deps;
  const byMessage = new WeakMap<object, Results>();
  /** The results that are shared, with their JSON once made. */
  const serialized = new WeakMap<ExecutionResult, { json?: string }>();
  const prepared = new WeakMap<object, Map<string, string>>();

  function executeShared(args: ExecutionArgs, field: string, selection: string, message: unknown) {
    if (typeof message !== 'object' || message === null) return execute({ ...args, rootValue: message });
    let results = byMessage.get(message);
    if (!results) byMessage.set(message, (results = new Map()));
    const known = results.get(selection);
    if (known) return known;
    metrics.subscriptionExecutions.inc({ field });
    const mark = (result: ExecutionResult) => {
      serialized.set(result, {});
      return result;
    };
    const running = execute({ ...args, rootValue: message });
    const result = running instanceof Promise ? running.then(mark) : mark(running);
    results.set(selection, result);
    return result;
  }

  const envelopeOf = (id: string, payload: string) => `{"id":${JSON.stringify(id)},"type":"next","payload":${payload}}`;

  return {
    /** graphql-ws's `subscribe`: graphql-js's, with each message's execution shared (see above). */
    async subscribe(args: ExecutionArgs): Promise<AsyncIterableIterator<ExecutionResult> | ExecutionResult> {
      const source = await createSourceEventStream(args);
      if (!(Symbol.asyncIterator in source)) return source;
      const context = args.contextValue as RequestContext | undefined;
      const operation = getOperationAST(args.document, args.operationName);
      const rootField = operation?.selectionSet.selections[0];
      const field = rootField?.kind === 'Field' ? rootField.name.value : 'unknown';
      const viewer = context?.viewer;
      const selection = [
        viewer?.tenantId ?? '',
        [...(viewer?.scopes ?? [])].sort().join(','),
        args.operationName ?? '',
        stableJson(args.variableValues ?? null),
        print(args.document),
      ].join('\n');
      const iterator = source[Symbol.asyncIterator]();
      const mapped: AsyncIterableIterator<ExecutionResult> = {
        async next() {
          const r = await iterator.next();
          if (r.done) return { value: undefined, done: true };
          return { value: await executeShared(args, field, selection, r.value), done: false };
        },
        return: async () => {
          await iterator.return?.();
          return { value: undefined, done: true };
        },
        throw: async (err: unknown) => {
          await iterator.return?.();
          throw err;
        },
        [Symbol.asyncIterator]() {
          return mapped;
        },
      };
      return mapped;
    },

    /** For each new socket, before graphql-ws adds its listeners: lets `prepare` hand it shared bytes. */
    attach(socket: WebSocket): void {
      const pending = new Map<string, string>();
      prepared.set(socket, pending);
      const send = socket.send.bind(socket) as (data: unknown, ...rest: unknown[]) => void;
      socket.send = ((data: unknown, ...rest: unknown[]) => {
        if (pending.size > 0 && typeof data === 'string') {
          const bytes = pending.get(data);
          if (bytes !== undefined) {
            pending.delete(data);
            return send(bytes, ...rest);
          }
        }
        return send(data, ...rest);
      }) as WebSocket['send'];
    },

    /**
     * graphql-ws's onNext: for a shared result, the placeholder payload to send instead (the socket
     * then sends the shared JSON); undefined for anything else, which graphql-ws sends as usual.
     * graphql-ws awaits each `next` send before taking the subscription's next message, so a
     * socket holds at most one prepared message per subscription id.
     */
    prepare(socket: object, id: string, result: ExecutionResult): Record<string, never> | undefined {
      const shared = serialized.get(result);
      const pending = prepared.get(socket);
      if (!shared || !pending) return undefined;
      shared.json ??= JSON.stringify(result);
      // What graphql-ws's stringifyMessage makes of { id, type: 'next', payload: {} }.
      pending.set(envelopeOf(id, '{}'), envelopeOf(id, shared.json));
      return {};
    },
  };
}

export type SubscriptionFanout = ReturnType<typeof createSubscriptionFanout>;

/** JSON with object keys sorted, so variables given in another order still share a selection. */
function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
