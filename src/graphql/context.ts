import type { AnalyticsScope, AnalyticsService } from '../analytics/analytics.service.js';
import type { RequestClient } from '../audit/audit-entry.js';
import type { AuditLogService } from '../audit/audit-log.service.js';
import type { ApiKeyService } from '../auth/api-key.service.js';
import type { IngestService } from '../ingest/ingest.service.js';
import type { DeadLetterService } from '../streams/dead-letters.js';
import type { Viewer } from '../auth/viewer.js';
import type { Logger } from '../observability/logger.js';
import type { RealtimeService } from '../realtime/realtime.service.js';
import type { CostBudget } from '../plugins/cost/cost-budget.js';
import type { SystemStatusService } from '../ops/system-status.service.js';

/** What a resolver reaches; services are shared, everything else is built per request. */
export interface Services {
  readonly apiKeys: ApiKeyService;
  readonly ingest: IngestService;
  readonly deadLetters: DeadLetterService;
  readonly analytics: AnalyticsService;
  readonly realtime: RealtimeService;
  readonly auditLog: AuditLogService;
  readonly systemStatus: SystemStatusService;
  /** The per-key cost budgets; absent with COST_MODE=off. */
  readonly costBudget?: CostBudget;
}

/**
 * Built once per request by the context function in http/graphql.middleware.ts (and, for
 * WebSocket operations, by the subscription server). `viewer` is null for a request without
 * credentials: fields that need one fail with UNAUTHENTICATED through the auth checker.
 */
export interface GatewayContext {
  readonly viewer: Viewer | null;
  readonly requestId: string;
  readonly logger: Logger;
  readonly services: Services;
  /** The viewer's tenant and this request's DataLoaders; null without a viewer. */
  readonly analytics: AnalyticsScope | null;
  /** The caller's address and user agent, for audit rows; absent where there is no HTTP request. */
  readonly client?: RequestClient;
}
