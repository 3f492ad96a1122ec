import type { RequestContext } from '../auth/request-context.js';
import type { AuditLogService } from './audit-log.service.js';

/** What the audit-log resolver reaches. */
export interface AuditContext extends RequestContext {
  readonly services: { readonly auditLog: AuditLogService };
}
