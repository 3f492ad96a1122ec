import type { ApolloServerPlugin } from '@apollo/server';
import type { RequestContext } from '../auth/request-context.js';
import { ErrorCode } from '../graphql/error-codes.js';
import type { Admission, CostLimits } from './cost/cost-limits.js';

export interface CostLimitPluginOptions {
  /**
   * The limits themselves (plugins/cost/cost-limits.ts), shared with the WebSocket server so
   * subscriptions pass the same checks. Required: there is no useful default.
   */
  readonly limits: CostLimits;
  /**
   * Whether to put `extensions.cost` on every response. Default true; with COST_MODE=off there is
   * no cost to report and nothing is added either way.
   */
  readonly reportInExtensions?: boolean;
}

/**
 * Cost limits over HTTP. In `didResolveOperation`, before any resolver or SQL runs: the depth,
 * alias and directive limits, the operation's static cost against the key's maximum, and the
 * charge of that cost to the key's budget; a refusal is thrown there, so Apollo answers it as a
 * GraphQL error with its code (and every plugin's didEncounterErrors sees it). In
 * `willSendResponse`: the actual cost from the data returned, the unused points refunded, and
 * `extensions.cost` on the response, with `Retry-After` when the budget ran short. Each operation
 * of a batched request goes through this on its own.
 */
export function costLimitPlugin(options: CostLimitPluginOptions): ApolloServerPlugin<RequestContext> {
  const { limits } = options;
  const report = (options.reportInExtensions ?? true) && limits.mode !== 'off';
  return {
    async requestDidStart() {
      let admission: Admission | undefined;
      return {
        async parsingDidStart() {
          // graphql-js's own message when parse's maxTokens (MAX_TOKENS) stops it ("more that" in graphql 16).
          return async (error) => {
            if (error && /contains more th\w+ \d+ tokens/.test(error.message)) limits.countTokenRejection();
          };
        },

        async didResolveOperation({ contextValue, document, operation, request }) {
          if (!operation) return;
          admission = await limits.admit({
            viewer: contextValue.viewer,
            document,
            operation,
            variables: request.variables,
            // Read only when a refusal is logged: the request's logger is made on first use.
            logger: () => contextValue.logger,
          });
          if (admission.error) throw admission.error;
        },

        async willSendResponse({ response, document, operation, request }) {
          const body = response.body;
          if (body.kind !== 'single') return;
          const actual =
            admission && document && operation
              ? await limits.settle(admission, {
                  document,
                  operation,
                  variables: request.variables,
                  data: body.singleResult.data,
                })
              : null;
          const error = admission?.error;
          if (error?.extensions.code === ErrorCode.RATE_LIMITED) {
            response.http.headers.set('retry-after', String(error.extensions.retryAfter));
          }
          if (report) {
            body.singleResult.extensions = { ...body.singleResult.extensions, cost: limits.report(admission, actual) };
          }
        },
      };
    },
  };
}
