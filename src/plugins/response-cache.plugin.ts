import { createHash } from 'node:crypto';
import { HeaderMap, type ApolloServerPlugin, type GraphQLRequestContext } from '@apollo/server';
import {
  getArgumentValues,
  getVariableValues,
  Kind,
  type FieldNode,
  type GraphQLSchema,
  type OperationDefinitionNode,
} from 'graphql';
import { LRUCache } from 'lru-cache';
import type { Redis } from '../redis/create-redis.js';
import { stableJson } from '../analytics/query-cache.js';
import { grants, type Scope } from '../auth/scopes.js';
import type { Viewer } from '../auth/viewer.js';
import type { RequestContext } from '../auth/request-context.js';
import { responseCacheKeys } from '../redis/keys.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';

/**
 * A root query field whose whole answer depends only on the tenant's data and its arguments, so
 * it may be answered from a stored copy until the tenant's data generation moves.
 */
export interface CacheableField {
  /** The scope the field's resolver demands (its `@Authorized`): a hit must not skip that check. */
  readonly scope: Scope;
  /**
   * Seconds an answer may be kept, from the field's coerced arguments; null (or a throw) when the
   * arguments are invalid: the operation then executes and raises the field's own error, never stored.
   */
  maxAgeS(args: Record<string, unknown>, now: number): number | null;
}

export interface ResponseCacheDeps {
  /** The request-path connection (fails fast while Redis is down). */
  readonly redis: Redis;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /**
   * The Redis key of a tenant's data generation, the number the rollup refresher bumps after it
   * committed new rows (analytics/query-cache.ts): an answer stored under an older one is stale.
   */
  readonly generationKey: (tenantId: string) => string;
}

export interface ResponseCachePluginOptions {
  /** Off: every operation executes, and GET answers get no cache headers. RESPONSE_CACHE, default on. */
  readonly enabled?: boolean;
  /** REDIS_KEY_PREFIX. Required. */
  readonly keyPrefix: string;
  /**
   * The cacheable root fields by name. An operation is answered from the cache only when every
   * root selection is one of these (or `__typename`). Required. None of them may be a field the
   * audit log records on success (audit-log.plugin.ts' `auditedQueryFields`): a hit runs no
   * resolver, so it produces only the rows a response's errors produce, and stored answers have none.
   */
  readonly fields: Readonly<Record<string, CacheableField>>;
}

/**
 * What is stored: generation, stored-at (ms), max age (s) and ETag, one per line, then the
 * serialized `data`. Only the last part is JSON, so a stale entry is recognized without parsing it.
 */
const HEADER_LINES = 4;

interface Lookup {
  readonly key: string;
  readonly generation: string;
  readonly maxAgeS: number;
}

interface Hit {
  readonly etag: string;
  readonly maxAgeS: number;
  readonly ageS: number;
  /** The stored `data` text, sent as it is when the transport can (graphql/serialized-data.ts). */
  readonly json: string;
}

/** A stored answer as this replica last read it: parsed once, then shared by every hit. */
interface LocalEntry {
  readonly generation: string;
  readonly storedAt: number;
  readonly maxAgeS: number;
  readonly etag: string;
  readonly json: string;
  /** Read, never written: the cost plugin walks it for the actual cost. */
  readonly data: Record<string, unknown>;
}

/** The bound on the parsed answers each replica keeps (by their text's length). */
const LOCAL_MAX_CHARS = 16 * 1024 * 1024;

/**
 * A whole-response cache for operations made only of cacheable root fields
 * (analytics/stats.response-cache.ts). In `responseForOperation`, which Apollo calls after every
 * `didResolveOperation` (so the cost limits have admitted and charged the operation,
 * cost-limit.plugin.ts), one MGET reads the tenant's generation and the stored answer; a hit is
 * returned as the response and nothing executes. A miss executes, and `willSendResponse` stores
 * the serialized `data` of an answer without errors, for the shortest max age of its fields.
 * Every other plugin's `willSendResponse` still runs on a hit: the cost plugin computes the actual
 * cost from the data, refunds and reports `extensions.cost`; the audit plugin sees the response.
 *
 * The key is the tenant and a hash of the document's hash, the operation name and the variables
 * (normalized); the generation is stored in the entry and compared, which retires a tenant's
 * answers at once when its data changes, as the per-field query cache does.
 *
 * GET answers: `Cache-Control: private, max-age=<the entry's max age>`, `Age` on a hit, and a weak
 * `ETag` of the serialized data (the body's `extensions.cost` differs per request, the data does
 * not), 304 when `If-None-Match` names it. A GET that is not cacheable gets `no-store`. POST
 * answers get no cache headers (POST responses are not cached by HTTP caches without them).
 *
 * Redis failures never fail an operation: it executes, and the error is counted.
 */
export function responseCachePlugin(
  deps: ResponseCacheDeps,
  options: ResponseCachePluginOptions,
): ApolloServerPlugin<RequestContext> {
  const { redis, metrics } = deps;
  const log = deps.logger.child({ component: 'response-cache' });
  const keys = responseCacheKeys(options.keyPrefix);
  const enabled = options.enabled ?? true;
  // Whether an entry is current is always Redis' generation; this only saves reading and
  // parsing the answer again on every hit.
  const local = new LRUCache<string, LocalEntry>({
    maxSize: LOCAL_MAX_CHARS,
    sizeCalculation: (entry) => Math.max(1, entry.json.length),
  });
  const fresh = (entry: Pick<LocalEntry, 'storedAt' | 'maxAgeS'>, now: number) =>
    now < entry.storedAt + entry.maxAgeS * 1000;
  const hitOf = (entry: LocalEntry, now: number): Hit => ({
    etag: entry.etag,
    maxAgeS: entry.maxAgeS,
    ageS: Math.max(0, Math.floor((now - entry.storedAt) / 1000)),
    json: entry.json,
  });

  return {
    async requestDidStart() {
      if (!enabled) return;
      let lookup: Lookup | undefined;
      let hit: Hit | undefined;
      let cacheable = false;
      return {
        async responseForOperation(ctx) {
          const viewer = ctx.contextValue.viewer;
          const operation = ctx.operation;
          if (!viewer || !operation || !ctx.queryHash) return null;
          const maxAgeS = cacheableMaxAge(ctx.schema, operation, ctx.request.variables, viewer, options.fields);
          if (maxAgeS === null) return null;
          cacheable = true;
          const operationHash = createHash('sha256')
            .update(`${ctx.queryHash}\n${ctx.operationName ?? ''}\n${stableJson(ctx.request.variables ?? {})}`)
            .digest('base64url');
          const key = keys.entry(viewer.tenantId, operationHash);
          const known = local.get(key);
          // An answer this replica holds and whose max age has not passed: only its generation is read.
          const held = known && fresh(known, Date.now()) ? known : undefined;
          let generation: string;
          let stored: string | null = null;
          try {
            if (held) {
              generation = (await redis.get(deps.generationKey(viewer.tenantId))) ?? '0';
            } else {
              const [gen, entry] = await redis.mget(deps.generationKey(viewer.tenantId), key);
              generation = gen ?? '0';
              stored = entry ?? null;
            }
          } catch (err) {
            cacheable = false;
            metrics.responseCacheRequests.inc({ result: 'error' });
            log.warn({ err }, 'response cache read failed; executing');
            return null;
          }
          const now = Date.now();
          let current = held?.generation === generation ? held : undefined;
          if (!current && stored !== null) {
            const entry = parseEntry(stored);
            if (entry && entry.generation === generation) {
              current = { ...entry, data: JSON.parse(entry.json) as Record<string, unknown> };
              local.set(key, current);
            }
          }
          if (!current && known) local.delete(key);
          if (current) {
            metrics.responseCacheRequests.inc({ result: 'hit' });
            hit = hitOf(current, now);
            return {
              http: { status: undefined, headers: new HeaderMap() },
              body: { kind: 'single', singleResult: { data: current.data } },
            };
          }
          metrics.responseCacheRequests.inc({ result: 'miss' });
          lookup = { key, generation, maxAgeS };
          return null;
        },

        async willSendResponse(ctx) {
          const isGet = ctx.request.http?.method === 'GET';
          const body = ctx.response.body;
          let etag: string | undefined;
          let maxAgeS = 0;
          let ageS: number | undefined;
          if (hit) {
            ({ etag, maxAgeS } = hit);
            ageS = hit.ageS;
            // The stored text goes out as it is. Every plugin listed before this one has read the
            // parsed data by now (Apollo starts the willSendResponse hooks in order, and the cost
            // plugin takes the data before its first await).
            const serialize = ctx.contextValue.serializeData;
            if (serialize && body.kind === 'single') body.singleResult.data = serialize(hit.json);
          } else if (lookup && body.kind === 'single' && !body.singleResult.errors && body.singleResult.data) {
            const data = JSON.stringify(body.singleResult.data);
            etag = `W/"${createHash('sha256').update(data).digest('base64url').slice(0, 27)}"`;
            maxAgeS = lookup.maxAgeS;
            const entry = `${lookup.generation}\n${Date.now()}\n${maxAgeS}\n${etag}\n${data}`;
            redis.set(lookup.key, entry, 'EX', maxAgeS).catch((err: unknown) => {
              metrics.responseCacheRequests.inc({ result: 'error' });
              log.warn({ err }, 'response cache write failed');
            });
          }
          if (!isGet) return;
          const headers = ctx.response.http.headers;
          if (!etag || !cacheable) {
            headers.set('cache-control', 'no-store');
            return;
          }
          headers.set('cache-control', `private, max-age=${maxAgeS}`);
          headers.set('etag', etag);
          if (ageS !== undefined) headers.set('age', String(ageS));
          if (matches(ctx.request.http?.headers.get('if-none-match'), etag)) {
            // Node's HTTP server sends no body with a 304, whichever framework writes the response.
            ctx.response.http.status = 304;
            metrics.responseCacheNotModified.inc();
          }
        },
      };
    },
  };
}

/**
 * The shortest max age of the operation's root fields, or null when it is not cacheable: not a
 * query, a root selection that is not a cacheable field (fragments and directives included, to
 * keep the rule simple), a field whose scope the viewer lacks (execution then answers FORBIDDEN
 * and the audit log records it), or arguments that do not coerce.
 */
function cacheableMaxAge(
  schema: GraphQLSchema,
  operation: OperationDefinitionNode,
  rawVariables: GraphQLRequestContext<RequestContext>['request']['variables'],
  viewer: Viewer,
  fields: Readonly<Record<string, CacheableField>>,
): number | null {
  if (operation.operation !== 'query') return null;
  const selected: FieldNode[] = [];
  for (const selection of operation.selectionSet.selections) {
    if (selection.kind !== Kind.FIELD || selection.directives?.length) return null;
    if (selection.name.value === '__typename') continue;
    const field = Object.hasOwn(fields, selection.name.value) ? fields[selection.name.value] : undefined;
    if (!field || !grants(viewer.scopes, field.scope)) return null;
    selected.push(selection);
  }
  if (selected.length === 0) return null;
  const queryFields = schema.getQueryType()?.getFields();
  const variables = getVariableValues(schema, operation.variableDefinitions ?? [], rawVariables ?? {});
  if (!queryFields || variables.errors) return null;
  const now = Date.now();
  let maxAgeS = Infinity;
  for (const node of selected) {
    const definition = queryFields[node.name.value];
    if (!definition) return null;
    let age: number | null;
    try {
      age = fields[node.name.value]!.maxAgeS(getArgumentValues(definition, node, variables.coerced), now);
    } catch {
      return null;
    }
    if (age === null || age <= 0) return null;
    maxAgeS = Math.min(maxAgeS, age);
  }
  // Whole seconds: Redis' EX and Cache-Control's max-age both take them.
  return Math.ceil(maxAgeS);
}

function parseEntry(stored: string) {
  let at = 0;
  const header: string[] = [];
  for (let i = 0; i < HEADER_LINES; i++) {
    const end = stored.indexOf('\n', at);
    if (end < 0) return null;
    header.push(stored.slice(at, end));
    at = end + 1;
  }
  const [generation, storedAt, maxAgeS, etag] = header as [string, string, string, string];
  return { generation, storedAt: Number(storedAt), maxAgeS: Number(maxAgeS), etag, json: stored.slice(at) };
}

/** `If-None-Match` by the weak comparison GET uses (RFC 9110 13.1.2): `W/` is ignored on both sides. */
function matches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  const opaque = etag.replace(/^W\//, '');
  return header.split(',').some((tag) => {
    const t = tag.trim();
    return t === '*' || t.replace(/^W\//, '') === opaque;
  });
}
