import { Arg, Authorized, Ctx, Mutation, Resolver } from 'type-graphql';
import type { PrivacyContext } from './privacy.context.js';
import { UserErasureType } from './user-erasure.type.js';

@Resolver()
export class UserErasureResolver {
  @Authorized('admin')
  @Mutation(() => UserErasureType, {
    description:
      "Erases one user's events (the tenant's userId) from every table, rollup, stream and dead letter; answers when done. Events of the user received afterwards are recorded.",
  })
  eraseUser(
    @Arg('userId', () => String) userId: string,
    @Ctx() { viewer, services }: PrivacyContext,
  ): Promise<UserErasureType> {
    return services.userErasure.erase(viewer!.tenantId, userId);
  }
}
