/** Internal type. DO NOT USE DIRECTLY. */
type Exact<T extends { [key: string]: unknown }> = { [K in keyof T]: T[K] };
/** Internal type. DO NOT USE DIRECTLY. */
export type Incremental<T> = T | { [P in keyof T]?: P extends ' $fragmentName' | '__typename' ? T[P] : never };
import type { TypedDocumentNode as DocumentNode } from '@graphql-typed-document-node/core';
/** One analytics event. Limits are checked per event; see recordEvents. */
export type EventInput = {
  /** Idempotency key, up to 128 characters: a repeat within the dedupe window is answered as a duplicate. */
  messageId?: string | null | undefined;
  /** A JSON object of at most 32 KiB serialized. */
  properties?: unknown;
  /** Up to 256 characters. */
  sessionId?: string | null | undefined;
  /** When the event happened by the client clock; defaults to receipt; more than 1 h ahead is clamped to receipt. */
  timestamp?: string | null | undefined;
  /** 1..128 characters of [A-Za-z0-9_.:-]. */
  type: string;
  /** The tenant's id for the user, up to 256 characters. */
  userId?: string | null | undefined;
  /** A finite numeric measure, aggregated by metrics. */
  value?: number | null | undefined;
};

/** A live window: tumbling, aligned to the epoch (UTC). */
export type Window =
  | 'FIVE_MINUTES'
  | 'ONE_HOUR'
  | 'ONE_MINUTE';

export type DashboardEventTypesQueryVariables = Exact<{
  first?: number | null | undefined;
}>;


export type DashboardEventTypesQuery = { eventTypes: Array<{ type: string, count: number, uniqueUsers: number, lastSeen: string }>, freshness: Array<{ source: string, stalenessMs: number }> };

export type DashboardMetricUpdatedSubscriptionVariables = Exact<{
  type?: string | null | undefined;
  window: Window;
}>;


export type DashboardMetricUpdatedSubscription = { metricUpdated: { type: string | null, window: Window, start: string, end: string, count: number, avg: number | null, p95: number | null, final: boolean } };

export type PartnerRecordEventsMutationVariables = Exact<{
  events: Array<EventInput> | EventInput;
  sentAt?: string | null | undefined;
}>;


export type PartnerRecordEventsMutation = { recordEvents: { accepted: number, duplicates: number, errors: Array<{ index: number, code: string, message: string }> } };


export const DashboardEventTypesDocument = {"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"query","name":{"kind":"Name","value":"DashboardEventTypes"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"first"}},"type":{"kind":"NamedType","name":{"kind":"Name","value":"Int"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"eventTypes"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"first"},"value":{"kind":"Variable","name":{"kind":"Name","value":"first"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"type"}},{"kind":"Field","name":{"kind":"Name","value":"count"}},{"kind":"Field","name":{"kind":"Name","value":"uniqueUsers"}},{"kind":"Field","name":{"kind":"Name","value":"lastSeen"}}]}},{"kind":"Field","name":{"kind":"Name","value":"freshness"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"source"}},{"kind":"Field","name":{"kind":"Name","value":"stalenessMs"}}]}}]}}]} as unknown as DocumentNode<DashboardEventTypesQuery, DashboardEventTypesQueryVariables>;
export const DashboardMetricUpdatedDocument = {"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"subscription","name":{"kind":"Name","value":"DashboardMetricUpdated"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"type"}},"type":{"kind":"NamedType","name":{"kind":"Name","value":"String"}}},{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"window"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"Window"}}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"metricUpdated"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"type"},"value":{"kind":"Variable","name":{"kind":"Name","value":"type"}}},{"kind":"Argument","name":{"kind":"Name","value":"window"},"value":{"kind":"Variable","name":{"kind":"Name","value":"window"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"type"}},{"kind":"Field","name":{"kind":"Name","value":"window"}},{"kind":"Field","name":{"kind":"Name","value":"start"}},{"kind":"Field","name":{"kind":"Name","value":"end"}},{"kind":"Field","name":{"kind":"Name","value":"count"}},{"kind":"Field","name":{"kind":"Name","value":"avg"}},{"kind":"Field","name":{"kind":"Name","value":"p95"}},{"kind":"Field","name":{"kind":"Name","value":"final"}}]}}]}}]} as unknown as DocumentNode<DashboardMetricUpdatedSubscription, DashboardMetricUpdatedSubscriptionVariables>;
export const PartnerRecordEventsDocument = {"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"mutation","name":{"kind":"Name","value":"PartnerRecordEvents"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"events"}},"type":{"kind":"NonNullType","type":{"kind":"ListType","type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"EventInput"}}}}}},{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"sentAt"}},"type":{"kind":"NamedType","name":{"kind":"Name","value":"DateTime"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"recordEvents"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"events"},"value":{"kind":"Variable","name":{"kind":"Name","value":"events"}}},{"kind":"Argument","name":{"kind":"Name","value":"sentAt"},"value":{"kind":"Variable","name":{"kind":"Name","value":"sentAt"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"accepted"}},{"kind":"Field","name":{"kind":"Name","value":"duplicates"}},{"kind":"Field","name":{"kind":"Name","value":"errors"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"index"}},{"kind":"Field","name":{"kind":"Name","value":"code"}},{"kind":"Field","name":{"kind":"Name","value":"message"}}]}}]}}]}}]} as unknown as DocumentNode<PartnerRecordEventsMutation, PartnerRecordEventsMutationVariables>;