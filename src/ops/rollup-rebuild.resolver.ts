import { Arg, Authorized, Ctx, Mutation, Resolver } from 'type-graphql';
import type { OpsContext } from './ops.context.js';
import { DateTimeScalar } from '../graphql/scalars.js';
import { RollupRebuildType } from './rollup-rebuild.type.js';

@Resolver()
export class RollupRebuildResolver {
  @Authorized('admin')
  @Mutation(() => RollupRebuildType, {
    description:
      "Recomputes the tenant's rollups of [from, to) from the events table (after a bulk load or a repair); answers when done.",
  })
  rebuildRollups(
    @Arg('from', () => DateTimeScalar) from: Date,
    @Arg('to', () => DateTimeScalar) to: Date,
    @Ctx() { viewer, services }: OpsContext,
  ): Promise<RollupRebuildType> {
    return services.rollupRebuild.rebuild(viewer!.tenantId, from, to);
  }
}
