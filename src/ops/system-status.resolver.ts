import { Authorized, Ctx, Query, Resolver } from 'type-graphql';
import type { OpsContext } from './ops.context.js';
import { SystemStatus } from './system-status.type.js';

@Resolver()
export class SystemStatusResolver {
  @Authorized('admin')
  @Query(() => SystemStatus, {
    description:
      "Streams (length, dead letters, each group's pending and lag per partition), rollup staleness, and the answering replica's cache and pool figures. SERVICE_UNAVAILABLE while Redis or Postgres cannot be read.",
  })
  systemStatus(@Ctx() { services }: OpsContext): Promise<SystemStatus> {
    return services.systemStatus.status();
  }
}
