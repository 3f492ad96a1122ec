import { Args, Authorized, Ctx, Query, Resolver } from 'type-graphql';
import { PageArgs } from '../analytics/page.args.js';
import type { OpsContext } from './ops.context.js';
import { deadLetterPage } from './dead-letter.page.js';
import { DeadLetterConnection } from './dead-letter.type.js';

@Resolver()
export class DeadLetterResolver {
  @Authorized('admin')
  @Query(() => DeadLetterConnection, {
    description:
      "The tenant's dead letters, newest first, in pages of up to 100, each with its reason; replayDeadLetters puts them back.",
  })
  deadLetters(
    @Args(() => PageArgs) args: PageArgs,
    @Ctx() { viewer, services }: OpsContext,
  ): Promise<DeadLetterConnection> {
    return deadLetterPage(services.deadLetters, viewer!.tenantId, args.first, args.after);
  }
}
