import type { ApolloServerPlugin } from '@apollo/server';
import { Kind, type OperationDefinitionNode } from 'graphql';
import { auditEntry, type AuditEntry, type AuditResult } from '../audit/audit-entry.js';
import type { RequestContext } from '../auth/request-context.js';
import { ErrorCode } from '../graphql/error-codes.js';
import { isExposed } from '../graphql/format-error.js';

export interface AuditLogPluginOptions {
  /** Where the rows go; `record` must not block (audit-log.writer.ts). Required. */
  readonly writer: { record(entry: AuditEntry): void };
  /**
   * Root query fields audited as admin reads (mutations are always audited). Default
   * `['auditLog', 'deadLetters']`: reading the audit log or the dead letters (event content) is itself on the record.
   */
  readonly auditedQueryFields?: readonly string[];
  /**
   * `extensions.code`s that mean a limit refused the request, whichever plugin or resolver raised
   * it. Default COST_LIMIT_EXCEEDED, RATE_LIMITED, PAYLOAD_TOO_LARGE.
   */
  readonly limitCodes?: readonly string[];
  /**
   * Parse and validation errors that are limit refusals too: graphql-armor's depth, alias,
   * directive and token rules raise plain validation errors. Default: their messages.
   */
  readonly limitMessages?: RegExp;
}

const ARMOR_LIMIT = /^Syntax Error: (Query depth|Aliases|Directives|Token) limit of \d+ exceeded/;
const REQUEST_ERROR_CODES = new Set(['GRAPHQL_VALIDATION_FAILED', 'GRAPHQL_PARSE_FAILED']);

/** How many of a batch's per-event errors a row keeps; the counts are always complete. */
const MAX_EVENT_ERRORS = 10;
const MAX_TYPES = 20;

interface ResolvedField {
  readonly field: string;
  readonly args: Record<string, unknown>;
  readonly error: Error | null;
  readonly result: unknown;
}

const codeOf = (error: unknown): string | undefined => {
  const code = (error as { extensions?: { code?: unknown } } | null)?.extensions?.code;
  return typeof code === 'string' ? code : undefined;
};

/**
 * The audit log over HTTP (the WebSocket path records its own rows in realtime/websocket.server.ts,
 * authentication failures and body-size refusals are recorded in http/graphql.middleware.ts,
 * where the request is refused before Apollo runs). One row per:
 * - root mutation field, with its outcome and what it did (counts, ids, names; never a key);
 * - audited query field (admin reads), with its arguments;
 * - scope denial (FORBIDDEN), missing key (UNAUTHENTICATED) or limit rejection on any other field
 *   or on the whole request (action `request`), detected by `extensions.code`, so limits raised
 *   by other plugins are audited without depending on them.
 * Rows are built in willSendResponse and handed to the writer, which queues them: nothing here
 * waits on Postgres.
 */
export function auditLogPlugin(options: AuditLogPluginOptions): ApolloServerPlugin<RequestContext> {
  const auditedQueryFields = new Set(options.auditedQueryFields ?? ['auditLog', 'deadLetters']);
  const limitCodes = new Set<string>(
    options.limitCodes ?? [ErrorCode.COST_LIMIT_EXCEEDED, ErrorCode.RATE_LIMITED, ErrorCode.PAYLOAD_TOO_LARGE],
  );

  const limitMessages = options.limitMessages ?? ARMOR_LIMIT;

  const resultOfError = (error: unknown): AuditResult | undefined => {
    const code = codeOf(error);
    if (code && REQUEST_ERROR_CODES.has(code)) {
      return limitMessages.test((error as Error).message) ? 'rejected' : undefined;
    }
    if (code === ErrorCode.FORBIDDEN) return 'denied';
    if (code === ErrorCode.UNAUTHENTICATED) return 'unauthenticated';
    if (code !== undefined && limitCodes.has(code)) return 'rejected';
    return undefined;
  };

  /** Whether this operation needs its root fields watched: only then is a resolver hook installed. */
  const watches = (operation: OperationDefinitionNode) =>
    operation.operation === 'mutation' ||
    operation.selectionSet.selections.some((s) => s.kind !== Kind.FIELD || auditedQueryFields.has(s.name.value));

  return {
    async requestDidStart() {
      const resolved = new Map<string, ResolvedField>();
      return {
        async executionDidStart({ operation }) {
          // Apollo executes even when no operation was resolved (operation-guard.plugin.ts refuses that first).
          if (!operation || !watches(operation)) return;
          const isMutation = operation.operation === 'mutation';
          return {
            willResolveField({ info, args }) {
              if (info.path.prev !== undefined) return;
              if (!isMutation && !auditedQueryFields.has(info.fieldName)) return;
              const responseKey = String(info.path.key);
              return (error, result) => resolved.set(responseKey, { field: info.fieldName, args, error, result });
            },
          };
        },

        async willSendResponse({ contextValue, errors, operation, operationName }) {
          const { viewer, client, requestId } = contextValue;
          const common = { viewer, client, requestId, operationName: operationName ?? null };
          const rows: AuditEntry[] = [];
          for (const field of resolved.values()) {
            const outcome = describe(field, resultOfError);
            rows.push(auditEntry({ ...common, action: field.field, result: outcome.result, details: outcome.details }));
          }
          // Refusals outside the watched fields: one row per (field, outcome), the request's if no field.
          const seen = new Set<string>();
          for (const error of errors ?? []) {
            const result = resultOfError(error);
            const responseKey = error.path?.[0];
            if (!result || (responseKey !== undefined && resolved.has(String(responseKey)))) continue;
            const action = responseKey === undefined ? 'request' : fieldName(operation, String(responseKey));
            if (seen.has(`${action}\n${result}`)) continue;
            seen.add(`${action}\n${result}`);
            rows.push(auditEntry({ ...common, action, result, details: errorDetails(error) }));
          }
          for (const row of rows) options.writer.record(row);
        },
      };
    },
  };
}

/** The field a response key names at the root (an alias, or the field itself). */
function fieldName(operation: OperationDefinitionNode | undefined, responseKey: string): string {
  for (const s of operation?.selectionSet.selections ?? []) {
    if (s.kind === Kind.FIELD && (s.alias?.value ?? s.name.value) === responseKey) return s.name.value;
  }
  return responseKey;
}

/**
 * Code and message of an error as the client saw them: masked internal errors stay masked here.
 * A contract code (a limit, a denial) is kept even when the error was not made safe on purpose,
 * and a cost refusal keeps its numbers (`extensions.cost`).
 */
function errorDetails(error: unknown): Record<string, unknown> {
  const code = codeOf(error);
  const cost = (error as { extensions?: { cost?: unknown } }).extensions?.cost;
  if (isExposed({ extensions: code ? { code } : {} }, error)) {
    return { code, message: (error as Error).message, ...(cost === undefined ? {} : { cost }) };
  }
  if (code && code !== ErrorCode.INTERNAL_SERVER_ERROR && code in ErrorCode) {
    return { code, ...(cost === undefined ? {} : { cost }) };
  }
  return { code: ErrorCode.INTERNAL_SERVER_ERROR, message: 'Internal server error' };
}

const plain = (value: unknown): unknown =>
  value instanceof Date ? value.toISOString() : value === undefined ? null : value;

/**
 * What a root field did, for its row. Arguments are described the same way whatever the outcome
 * (a denied createApiKey still says which scopes were asked for); results only on success.
 * The plaintext of a created key is never read.
 */
function describe(
  { field, args, error, result }: ResolvedField,
  resultOfError: (error: unknown) => AuditResult | undefined,
): { result: AuditResult; details: Record<string, unknown> } {
  const details: Record<string, unknown> = {};
  switch (field) {
    case 'recordEvents': {
      const events = Array.isArray(args.events) ? (args.events as { type?: unknown }[]) : [];
      details.events = events.length;
      details.types = [...new Set(events.map((e) => String(e?.type)))].slice(0, MAX_TYPES);
      break;
    }
    case 'recordEvent':
      details.type = String((args.input as { type?: unknown } | undefined)?.type);
      break;
    case 'createApiKey':
      details.name = args.name;
      details.scopes = args.scopes;
      break;
    case 'revokeApiKey':
      details.revokedKeyId = args.id;
      break;
    case 'replayDeadLetters':
      details.limit = args.limit ?? null;
      break;
    // The user id and counts only: an erasure's row must not keep what it erased.
    case 'eraseUser':
      details.userId = args.userId;
      break;
    case 'rebuildRollups':
      details.from = plain(args.from);
      details.to = plain(args.to);
      break;
    case 'deadLetters':
      details.first = args.first ?? null;
      details.after = args.after ? 'cursor' : null;
      break;
    case 'auditLog': {
      const filter = (args.filter ?? {}) as Record<string, unknown>;
      details.filter = Object.fromEntries(Object.entries(filter).map(([k, v]) => [k, plain(v)]));
      details.first = args.first ?? null;
      details.after = args.after ? 'cursor' : null;
      break;
    }
  }
  if (error) return { result: resultOfError(error) ?? 'error', details: { ...details, ...errorDetails(error) } };

  let outcome: AuditResult = 'success';
  switch (field) {
    case 'recordEvents': {
      const r = result as {
        accepted: number;
        duplicates: number;
        errors: { index: number; code: string; message: string }[];
      };
      Object.assign(details, { accepted: r.accepted, duplicates: r.duplicates, rejected: r.errors.length });
      if (r.errors.length > 0) {
        details.errors = r.errors
          .slice(0, MAX_EVENT_ERRORS)
          .map((e) => ({ index: e.index, code: e.code, message: e.message }));
        outcome = r.accepted + r.duplicates > 0 ? 'partial' : 'error';
      }
      break;
    }
    case 'recordEvent': {
      const r = result as { id: string; duplicate: boolean };
      Object.assign(details, { eventId: r.id, duplicate: r.duplicate });
      break;
    }
    case 'createApiKey': {
      const { apiKey } = result as { apiKey: { id: string; prefix: string } };
      Object.assign(details, { createdKeyId: apiKey.id, createdKeyPrefix: apiKey.prefix });
      break;
    }
    case 'replayDeadLetters':
      details.replayed = result;
      break;
    case 'eraseUser':
      details.eventsDeleted = (result as { eventsDeleted: number }).eventsDeleted;
      break;
    case 'rebuildRollups':
      details.hours = (result as { hours: number }).hours;
      break;
    case 'deadLetters':
    case 'auditLog':
      details.returned = (result as { edges: unknown[] }).edges.length;
      break;
  }
  return { result: outcome, details };
}
