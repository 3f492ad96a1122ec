import { MAX_DAYS, MAX_POINTS } from '../../analytics/analytics.service.js';
import { ROLLUP_SOURCES } from '../../analytics/rollup.repository.js';

/** How many items a list field asks for, read from its arguments. */
export type SizeRule =
  | { readonly arg: string; readonly default: number; readonly max: number }
  | { readonly fixed: number }
  | { readonly fromArgs: (args: Record<string, unknown>) => number };

/**
 * The cost of one field (see cost-model.ts for the rules that apply to fields not listed here):
 * - `object`: `cost` (default 1) plus its selection;
 * - `list`: `size` × (`cost` (default 1) plus its selection);
 * - `connection`: `cost` (default 2: the page and, when asked, its count) plus `size` × one edge;
 * - `operation`: a mutation or subscription field: its own `cost` plus its selection;
 * - `included`: nothing, selection included: the parent's cost already covers it.
 */
export type FieldCost =
  | { readonly kind: 'object'; readonly cost?: number }
  | { readonly kind: 'list'; readonly size: SizeRule; readonly cost?: number }
  | { readonly kind: 'connection'; readonly size: SizeRule; readonly cost?: number }
  | { readonly kind: 'operation'; readonly cost: number | ((args: Record<string, unknown>) => number) }
  | { readonly kind: 'included' };

const MINUTE = 60_000;
const BUCKET_MS: Record<string, number> = { MINUTE, HOUR: 60 * MINUTE, DAY: 24 * 60 * MINUTE };

/**
 * Buckets of `width` ms touching [from, to), as the analytics service aligns them. A range the
 * service refuses (inverted, or more than `max` buckets) costs no rows: it is answered
 * BAD_USER_INPUT before anything is read.
 */
function buckets(args: Record<string, unknown>, width: number | undefined, max: number): number {
  const { from, to } = args;
  if (!(from instanceof Date) || !(to instanceof Date) || !width) return max;
  if (to.getTime() < from.getTime()) return 0;
  const n = (Math.ceil(to.getTime() / width) * width - Math.floor(from.getTime() / width) * width) / width;
  return n > max ? 0 : n;
}

/**
 * Declared costs, keyed by `Type.field`, for every field whose cost the general rules cannot
 * infer: lists (their size comes from an argument, the range, or a known bound), mutations and
 * subscriptions. Sizes mirror the services' own limits, so a request is charged for what it may
 * actually read. costModel() refuses to start when an entry names a field the schema lacks, or
 * when a list of objects has no entry, so this table cannot drift from the schema.
 */
export const FIELD_COSTS: Readonly<Record<string, FieldCost>> = {
  'Query.events': { kind: 'connection', size: { arg: 'first', default: 20, max: 100 } },
  'Query.users': { kind: 'connection', size: { arg: 'first', default: 20, max: 100 } },
  'Query.eventTypes': { kind: 'list', size: { arg: 'first', default: 50, max: 100 } },
  'Query.dailyStats': { kind: 'list', size: { fromArgs: (a) => buckets(a, BUCKET_MS.DAY, MAX_DAYS) } },
  'Query.timeseries': {
    kind: 'list',
    size: { fromArgs: (a) => buckets(a, BUCKET_MS[String(a.interval)], MAX_POINTS) },
  },
  'Query.freshness': { kind: 'list', size: { fixed: ROLLUP_SOURCES.length } },
  'AnalyticsUser.events': { kind: 'list', size: { arg: 'first', default: 10, max: 100 } },

  // Ingestion is the partners' main traffic: 1 point per started 100 events keeps a full
  // 1000-event batch at 10, so one key's default budget carries about 30,000 events a second.
  'Mutation.recordEvent': { kind: 'operation', cost: 1 },
  'Mutation.recordEvents': {
    kind: 'operation',
    cost: (a) => Math.max(1, Math.ceil((Array.isArray(a.events) ? a.events.length : 0) / 100)),
  },
  'RecordEventsPayload.errors': { kind: 'included' },
  'Mutation.createApiKey': { kind: 'operation', cost: 10 },
  'Mutation.revokeApiKey': { kind: 'operation', cost: 10 },
  'Mutation.replayDeadLetters': {
    kind: 'operation',
    cost: (a) => 10 + Math.ceil((typeof a.limit === 'number' ? Math.max(0, a.limit) : 100) / 100),
  },
  // Data lifecycle: each walks a user's events or a range of hours; priced like key management.
  'Mutation.eraseUser': { kind: 'operation', cost: 100 },
  'Mutation.rebuildRollups': { kind: 'operation', cost: 100 },
  'Query.deadLetters': { kind: 'connection', size: { arg: 'first', default: 20, max: 100 } },

  // A few Redis calls per partition and one query; its lists are bounded by the deployment
  // (partitions, groups, rollups, pools), not by the caller.
  'Query.systemStatus': { kind: 'object', cost: 10 },
  'SystemStatus.streams': { kind: 'included' },
  'SystemStatus.rollups': { kind: 'included' },
  'SystemStatus.pools': { kind: 'included' },
  'StreamPartitionStatus.groups': { kind: 'included' },

  // Charged once, when the subscription starts: it then holds a channel for as long as it runs.
  'Subscription.metricUpdated': { kind: 'operation', cost: 10 },
  'Subscription.eventRecorded': { kind: 'operation', cost: 10 },
};
