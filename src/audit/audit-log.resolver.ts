import { Args, Authorized, Ctx, Query, Resolver } from 'type-graphql';
import type { AuditContext } from './audit.context.js';
import { AuditLogArgs } from './audit-log.args.js';
import type { AuditPage } from './audit-log.service.js';
import { AuditConnection } from './audit-log.type.js';

@Resolver()
export class AuditLogResolver {
  @Authorized('admin')
  @Query(() => AuditConnection, {
    description:
      "The tenant's audit rows, newest first, in pages of up to 100. Rows of refused unknown keys belong to no tenant and are not listed.",
  })
  auditLog(
    @Args(() => AuditLogArgs) args: AuditLogArgs,
    @Ctx() { viewer, services }: AuditContext,
  ): Promise<AuditPage> {
    return services.auditLog.page(viewer!.tenantId, args.filter ?? null, args.first ?? null, args.after ?? null);
  }
}
