import type { DocumentNode, GraphQLSchema, OperationDefinitionNode } from 'graphql';
import type { Viewer } from '../../auth/viewer.js';
import { CostLimitExceededError, RateLimitedError, type GatewayError } from '../../graphql/errors.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { BudgetState, CostBudget } from './cost-budget.js';
import { MAX_QUERY_NODES, TooManyNodesError, costModel } from './cost-model.js';
import { measureOperationShape, type OperationShape } from './operation-shape.js';

export type CostMode = 'enforce' | 'measure' | 'off';

export interface CostLimitsOptions {
  /** COST_MODE: enforce (default), measure or off. Off skips cost and budget, not the shape limits. */
  readonly mode: CostMode;
  /** MAX_QUERY_DEPTH, 12. */
  readonly maxDepth: number;
  /** MAX_ALIASES, 30. */
  readonly maxAliases: number;
  /** MAX_DIRECTIVES, 50. */
  readonly maxDirectives: number;
}

/** One operation's pass through the limits, kept until its response is sent. */
export interface Admission {
  readonly viewer: Viewer | null;
  /** Static cost; null with COST_MODE=off, or when it could not be computed. */
  readonly requested: number | null;
  /** The largest cost this key may request in one operation. */
  readonly maxOperationCost: number;
  /** Points taken from the key's budget for this operation. */
  charged: number;
  /** The budget after the last charge or refund; null without a viewer, or with Redis unreachable. */
  budget: BudgetState | null;
  /** The refusal, in enforce mode (in measure mode, refusals are only counted). */
  readonly error?: GatewayError;
}

/** The `extensions.cost` of a response (names as Shopify's `cost` and `throttleStatus`). */
export interface CostReport {
  readonly requestedQueryCost: number | null;
  readonly actualQueryCost: number | null;
  readonly maxOperationCost: number;
  readonly maximumAvailable: number | null;
  readonly currentlyAvailable: number | null;
  readonly restoreRate: number | null;
}

type Reason = 'operation_limit' | 'budget' | 'depth' | 'aliases' | 'directives';

/**
 * The limits every operation passes before it runs, shared by the HTTP plugin
 * (cost-limit.plugin.ts) and the WebSocket server (subscriptions), so both apply the same rules:
 * shape (depth, aliases, directives), the per-operation maximum, and the key's budget. Refusals
 * are GraphQL errors with the contract's codes; in measure mode they are counted and logged only.
 * Redis failures fail open: the operation is served without a budget (the per-operation maximum,
 * computed locally, still holds) and `cost_budget_errors_total` counts it.
 */
export function createCostLimits(
  deps: { schema: GraphQLSchema; budget: CostBudget; metrics: Metrics; logger: Logger },
  options: CostLimitsOptions,
) {
  const { budget, metrics } = deps;
  const model = options.mode === 'off' ? undefined : costModel(deps.schema);
  const log = deps.logger.child({ component: 'cost-limits' });
  const labelMode = options.mode === 'measure' ? 'measure' : 'enforce';
  // Apollo keeps each parsed document (its document store), so a repeated query brings the same
  // operation node: what depends on the document alone is computed once per node. The shape
  // never depends on variables; the requested cost only when the operation declares none.
  const shapes = new WeakMap<OperationDefinitionNode, OperationShape>();
  const staticCosts = new WeakMap<OperationDefinitionNode, number>();
  const requestedOf = (
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: Record<string, unknown> | undefined,
  ): number => {
    const known = staticCosts.get(operation);
    if (known !== undefined) return known;
    const cost = model!.requested(document, operation, variables);
    if (!operation.variableDefinitions?.length) staticCosts.set(operation, cost);
    return cost;
  };
  const shapeOf = (document: DocumentNode, operation: OperationDefinitionNode): OperationShape => {
    let shape = shapes.get(operation);
    if (!shape) shapes.set(operation, (shape = measureOperationShape(deps.schema, document, operation)));
    return shape;
  };

  const budgetCall = async (what: string, call: () => Promise<BudgetState>): Promise<BudgetState | null> => {
    try {
      return await call();
    } catch (err) {
      metrics.costBudgetErrors.inc();
      log.warn({ err }, `cost budget ${what} failed; serving without a budget`);
      return null;
    }
  };

  return {
    mode: options.mode,

    /** A document refused by the parser's token limit (parsing happens before admit). */
    countTokenRejection(): void {
      metrics.costRejections.inc({ reason: 'tokens', mode: 'enforce' });
    },

    /** Runs every check in order and charges the budget; the first refusal ends it (enforce mode). */
    async admit(input: {
      viewer: Viewer | null;
      document: DocumentNode;
      operation: OperationDefinitionNode;
      variables: Record<string, unknown> | undefined;
      logger?: () => Logger;
    }): Promise<Admission> {
      const { viewer, document, operation } = input;
      const maxOperationCost = budget.maxOperationCostOf(viewer ?? { maxOperationCost: null });
      let requested: number | null = null;
      let tooManyNodes = false;
      if (model) {
        try {
          requested = requestedOf(document, operation, input.variables);
        } catch (err) {
          // Variables that do not fit are refused by execution before any resolver runs.
          if (err instanceof TooManyNodesError) tooManyNodes = true;
        }
        if (requested !== null) metrics.operationCost.observe({ operation: operation.operation }, requested);
      }
      const admission: Admission = { viewer, requested, maxOperationCost, charged: 0, budget: null };

      const refuse = (reason: Reason, error: GatewayError, found: Record<string, unknown>): Admission | undefined => {
        metrics.costRejections.inc({ reason, mode: labelMode });
        if (labelMode === 'enforce') return { ...admission, error };
        (input.logger?.() ?? log).info(
          { reason, ...found, operationName: operation.name?.value ?? null },
          'operation over a limit, served because COST_MODE=measure',
        );
        return undefined;
      };

      const shape = shapeOf(document, operation);
      for (const [reason, found, maximum, what] of [
        ['depth', shape.depth, options.maxDepth, 'fields nested deeper'],
        ['aliases', shape.aliases, options.maxAliases, 'more aliases'],
        ['directives', shape.directives, options.maxDirectives, 'more directives'],
      ] as const) {
        if (found <= maximum) continue;
        const refused = refuse(
          reason,
          new CostLimitExceededError(`The operation has ${what} than the limit of ${maximum} (found ${found})`, {
            limit: reason,
            maximum,
            found,
          }),
          { found, maximum },
        );
        if (refused) return refused;
      }
      if (!model) return admission;

      if (tooManyNodes || (requested !== null && requested > maxOperationCost)) {
        const refused = refuse(
          'operation_limit',
          new CostLimitExceededError(
            tooManyNodes
              ? `The operation selects more than ${MAX_QUERY_NODES} fields once its fragments are expanded`
              : `The operation's cost of ${requested} is over the limit of ${maxOperationCost} for one operation; ask for fewer items (first) or split it`,
            { limit: 'operation_cost', requestedQueryCost: requested, maxOperationCost },
          ),
          { requested, maxOperationCost },
        );
        // Enforcing would have refused it before charging anything: measuring leaves the budget as that would.
        return refused ?? admission;
      }

      if (viewer && requested !== null) {
        const state = await budgetCall('charge', () => budget.charge(viewer.keyId, requested!));
        admission.budget = state;
        if (state?.taken) admission.charged = requested;
        if (state && !state.taken) {
          const refused = refuse(
            'budget',
            new RateLimitedError(
              `The key's cost budget holds ${state.currentlyAvailable} points; this operation needs ${requested}. Retry in ${Math.ceil(state.retryAfterMs / 1000)} s`,
              { retryAfterMs: state.retryAfterMs, retryAfter: Math.ceil(state.retryAfterMs / 1000) },
            ),
            { requested, currentlyAvailable: state.currentlyAvailable },
          );
          if (refused) return refused;
        }
      }
      return admission;
    },

    /**
     * After execution: the actual cost from what `data` holds, and the unused part of the charge
     * refunded. Returns the actual cost (null when none was computed).
     */
    async settle(
      admission: Admission,
      input: {
        document: DocumentNode;
        operation: OperationDefinitionNode;
        variables: Record<string, unknown> | undefined;
        data: Record<string, unknown> | null | undefined;
      },
    ): Promise<number | null> {
      if (!model || admission.requested === null) return null;
      if (admission.error) return 0;
      let actual: number;
      try {
        actual = model.actual(input.document, input.operation, input.variables, input.data);
      } catch (err) {
        log.warn({ err }, 'actual cost could not be computed; nothing refunded');
        return admission.requested;
      }
      const refund = admission.charged - actual;
      if (refund > 0 && admission.viewer) {
        const state = await budgetCall('refund', () => budget.refund(admission.viewer!.keyId, refund));
        if (state) {
          admission.budget = state;
          admission.charged = actual;
        }
      }
      return actual;
    },

    /** `extensions.cost` for a response. */
    report(admission: Admission | undefined, actual: number | null): CostReport {
      const state = admission?.budget ?? null;
      const withBudget = admission?.viewer != null;
      return {
        requestedQueryCost: admission?.requested ?? null,
        actualQueryCost: actual,
        maxOperationCost: admission?.maxOperationCost ?? budget.maxOperationCostOf({ maxOperationCost: null }),
        maximumAvailable: withBudget ? budget.capacity : null,
        currentlyAvailable: state ? state.currentlyAvailable : null,
        restoreRate: withBudget ? budget.restoreRate : null,
      };
    },
  };
}

export type CostLimits = ReturnType<typeof createCostLimits>;
