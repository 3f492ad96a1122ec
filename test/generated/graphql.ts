/** Internal type. DO NOT USE DIRECTLY. */
type Exact<T extends { [key: string]: unknown }> = { [K in keyof T]: T[K] };
/** Internal type. DO NOT USE DIRECTLY. */
export type Incremental<T> = T | { [P in keyof T]?: P extends ' $fragmentName' | '__typename' ? T[P] : never };
import type { TypedDocumentNode as DocumentNode } from '@graphql-typed-document-node/core';
export type Maybe<T> = T | null;
export type InputMaybe<T> = Maybe<T>;
/** All built-in and custom scalars, mapped to their actual values */
export type Scalars = {
  ID: { input: string; output: string; }
  String: { input: string; output: string; }
  Boolean: { input: boolean; output: boolean; }
  Int: { input: number; output: number; }
  Float: { input: number; output: number; }
  /** A date-time string at UTC, such as 2007-12-03T10:15:30Z, compliant with the `date-time` format outlined in section 5.6 of the RFC 3339 profile of the ISO 8601 standard for representation of dates and times using the Gregorian calendar. */
  DateTime: { input: string; output: string; }
  /** The `JSON` scalar type represents JSON values as specified by [ECMA-404](http://www.ecma-international.org/publications/files/ECMA-ST/ECMA-404.pdf). */
  JSON: { input: unknown; output: unknown; }
  /** The `SafeInt` scalar type represents non-fractional signed whole numeric values that are considered safe as defined by the ECMAScript specification. */
  SafeInt: { input: number; output: number; }
};

/** An API key of the tenant. The key itself is never shown again after creation. */
export type ApiKey = {
  __typename?: 'ApiKey';
  createdAt: Scalars['DateTime']['output'];
  id: Scalars['ID']['output'];
  /** Recorded with a resolution of about a minute. */
  lastUsedAt?: Maybe<Scalars['DateTime']['output']>;
  name: Scalars['String']['output'];
  /** The first characters of the key, to recognise it in lists and logs. */
  prefix: Scalars['String']['output'];
  revokedAt?: Maybe<Scalars['DateTime']['output']>;
  scopes: Array<Scalars['String']['output']>;
};

export type CreatedApiKey = {
  __typename?: 'CreatedApiKey';
  apiKey: ApiKey;
  /** The key to send as "Authorization: Bearer <key>". Shown this once only. */
  key: Scalars['String']['output'];
};

/** Why one event of a batch was rejected; the others are unaffected. */
export type EventError = {
  __typename?: 'EventError';
  code: Scalars['String']['output'];
  /** The event's position in the request's list. */
  index: Scalars['Int']['output'];
  message: Scalars['String']['output'];
};

/** One analytics event. Limits are checked per event; see recordEvents. */
export type EventInput = {
  /** Idempotency key, up to 128 characters: a repeat within the dedupe window is answered as a duplicate. */
  messageId?: InputMaybe<Scalars['String']['input']>;
  /** A JSON object of at most 32 KiB serialized. */
  properties?: InputMaybe<Scalars['JSON']['input']>;
  /** Up to 256 characters. */
  sessionId?: InputMaybe<Scalars['String']['input']>;
  /** When the event happened by the client clock; defaults to receipt; more than 1 h ahead is clamped to receipt. */
  timestamp?: InputMaybe<Scalars['DateTime']['input']>;
  /** 1..128 characters of [A-Za-z0-9_.:-]. */
  type: Scalars['String']['input'];
  /** The tenant's id for the user, up to 256 characters. */
  userId?: InputMaybe<Scalars['String']['input']>;
  /** A finite numeric measure, aggregated by metrics. */
  value?: InputMaybe<Scalars['Float']['input']>;
};

export type Mutation = {
  __typename?: 'Mutation';
  /** Creates a key in the caller's tenant. The plaintext key is returned once. */
  createApiKey: CreatedApiKey;
  /** Records one event; invalid input fails the whole call with BAD_USER_INPUT. */
  recordEvent: RecordEventPayload;
  /** Records a batch (at most INGEST_MAX_BATCH events, default 1000). A bad event is reported in errors and does not reject the others. sentAt (the client clock at sending) corrects clock skew. */
  recordEvents: RecordEventsPayload;
  /** Puts up to `limit` (default 100) of the tenant's dead-lettered events back on the stream. */
  replayDeadLetters: Scalars['Int']['output'];
  /** Revokes a key of the caller's tenant; every replica refuses it within seconds. */
  revokeApiKey: ApiKey;
};


export type MutationCreateApiKeyArgs = {
  name: Scalars['String']['input'];
  scopes: Array<Scalars['String']['input']>;
};


export type MutationRecordEventArgs = {
  input: EventInput;
};


export type MutationRecordEventsArgs = {
  events: Array<EventInput>;
  sentAt?: InputMaybe<Scalars['DateTime']['input']>;
};


export type MutationReplayDeadLettersArgs = {
  limit?: InputMaybe<Scalars['Int']['input']>;
};


export type MutationRevokeApiKeyArgs = {
  id: Scalars['ID']['input'];
};

export type Query = {
  __typename?: 'Query';
  /** Who the API key belongs to and what it may do. */
  viewer: Viewer;
};

export type RecordEventPayload = {
  __typename?: 'RecordEventPayload';
  /** True when the messageId was already recorded within the dedupe window. */
  duplicate: Scalars['Boolean']['output'];
  /** The event's id; for a duplicate, the id of the event first recorded with its messageId. */
  id: Scalars['ID']['output'];
};

export type RecordEventsPayload = {
  __typename?: 'RecordEventsPayload';
  /** Events newly accepted. */
  accepted: Scalars['Int']['output'];
  /** Events whose messageId had already been recorded. */
  duplicates: Scalars['Int']['output'];
  errors: Array<EventError>;
  /** Per input position, the event id (the first id for a duplicate); null where the event was rejected. */
  ids: Array<Maybe<Scalars['ID']['output']>>;
};

/** The caller, as identified by its API key. */
export type Viewer = {
  __typename?: 'Viewer';
  /** The name given to the API key when it was created. */
  keyName: Scalars['String']['output'];
  /** Scopes the key holds: events:write, analytics:read, admin. */
  scopes: Array<Scalars['String']['output']>;
  /** The tenant's slug; every answer is scoped to it. */
  tenant: Scalars['String']['output'];
};

export type CreateApiKeyMutationVariables = Exact<{
  name: string;
  scopes: Array<string> | string;
}>;


export type CreateApiKeyMutation = { createApiKey: { key: string, apiKey: { id: string, name: string, prefix: string, scopes: Array<string>, createdAt: string } } };

export type RevokeApiKeyMutationVariables = Exact<{
  id: string | number;
}>;


export type RevokeApiKeyMutation = { revokeApiKey: { id: string, revokedAt: string | null } };

export type ViewerQueryVariables = Exact<{ [key: string]: never; }>;


export type ViewerQuery = { viewer: { tenant: string, keyName: string, scopes: Array<string> } };


export const CreateApiKeyDocument = {"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"mutation","name":{"kind":"Name","value":"CreateApiKey"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"name"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"String"}}}},{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"scopes"}},"type":{"kind":"NonNullType","type":{"kind":"ListType","type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"String"}}}}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"createApiKey"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"name"},"value":{"kind":"Variable","name":{"kind":"Name","value":"name"}}},{"kind":"Argument","name":{"kind":"Name","value":"scopes"},"value":{"kind":"Variable","name":{"kind":"Name","value":"scopes"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"key"}},{"kind":"Field","name":{"kind":"Name","value":"apiKey"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"id"}},{"kind":"Field","name":{"kind":"Name","value":"name"}},{"kind":"Field","name":{"kind":"Name","value":"prefix"}},{"kind":"Field","name":{"kind":"Name","value":"scopes"}},{"kind":"Field","name":{"kind":"Name","value":"createdAt"}}]}}]}}]}}]} as unknown as DocumentNode<CreateApiKeyMutation, CreateApiKeyMutationVariables>;
export const RevokeApiKeyDocument = {"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"mutation","name":{"kind":"Name","value":"RevokeApiKey"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"id"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"ID"}}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"revokeApiKey"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"id"},"value":{"kind":"Variable","name":{"kind":"Name","value":"id"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"id"}},{"kind":"Field","name":{"kind":"Name","value":"revokedAt"}}]}}]}}]} as unknown as DocumentNode<RevokeApiKeyMutation, RevokeApiKeyMutationVariables>;
export const ViewerDocument = {"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"query","name":{"kind":"Name","value":"Viewer"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"viewer"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"tenant"}},{"kind":"Field","name":{"kind":"Name","value":"keyName"}},{"kind":"Field","name":{"kind":"Name","value":"scopes"}}]}}]}}]} as unknown as DocumentNode<ViewerQuery, ViewerQueryVariables>;