import { Authorized, Ctx, FieldResolver, Query, Resolver } from 'type-graphql';
import type { AuthContext } from './auth.context.js';
import { CostBudgetType } from './cost-budget.type.js';
import { ViewerType } from './viewer.type.js';

@Resolver(() => ViewerType)
export class ViewerResolver {
  @Authorized()
  @Query(() => ViewerType, { description: 'Who the API key belongs to and what it may do.' })
  viewer(@Ctx() { viewer }: AuthContext): ViewerType {
    // The auth checker has already refused a request without a viewer.
    return { tenant: viewer!.tenantSlug, keyName: viewer!.keyName, scopes: [...viewer!.scopes] };
  }

  @FieldResolver(() => CostBudgetType, {
    nullable: true,
    description: "The key's cost budget; null when cost limits are off (COST_MODE=off).",
  })
  async costBudget(@Ctx() { viewer, services }: AuthContext): Promise<CostBudgetType | null> {
    if (!services.costBudget) return null;
    // Redis unreachable: the budget is unknown, as extensions.cost then reports it (null).
    return services.costBudget.status(viewer!).catch(() => null);
  }
}
