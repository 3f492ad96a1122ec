import type { ApolloServerPlugin } from '@apollo/server';
import { unwrapResolverError } from '@apollo/server/errors';
import type { RequestContext } from '../auth/request-context.js';
import { isExposed } from '../graphql/format-error.js';
import type { Logger } from '../observability/logger.js';

/**
 * Logs every error that formatError will mask, with the request's logger (request id, and trace
 * id once tracing is on), so the generic "Internal server error" a client sees can be traced to
 * its cause. Exposed errors (bad input, auth) are expected traffic and are not logged here.
 */
export function errorLoggingPlugin(logger: Logger): ApolloServerPlugin<RequestContext> {
  return {
    async contextCreationDidFail({ error }) {
      if (!isExposed({}, error)) logger.error({ err: error }, 'building the request context failed');
    },
    async requestDidStart() {
      return {
        async didEncounterErrors({ errors, contextValue, operationName }) {
          for (const error of errors) {
            if (isExposed(error, error)) continue;
            contextValue.logger.error(
              { err: unwrapResolverError(error), path: error.path?.join('.'), operationName },
              'operation failed',
            );
          }
        },
      };
    },
  };
}
