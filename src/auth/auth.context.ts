import type { CostBudget } from '../plugins/cost/cost-budget.js';
import type { ApiKeyService } from './api-key.service.js';
import type { RequestContext } from './request-context.js';

/** What the key-management and viewer resolvers reach. */
export interface AuthContext extends RequestContext {
  readonly services: {
    readonly apiKeys: ApiKeyService;
    /** The per-key cost budgets; absent with COST_MODE=off. */
    readonly costBudget?: CostBudget;
  };
}
