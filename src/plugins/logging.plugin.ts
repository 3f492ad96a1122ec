import type { ApolloServerPlugin } from '@apollo/server';
import type { GatewayContext } from '../graphql/context.js';
import { ErrorCode } from '../graphql/error-codes.js';
import type { Logger } from '../observability/logger.js';
import { reportingListener, type OperationObserver, type OperationReport } from './operation-report.js';

export interface LoggingPluginOptions {
  /** Write one line per operation. LOG_OPERATIONS, default true. */
  readonly enabled?: boolean;
}

/** Client-chosen names are logged only in GraphQL's name syntax, cut to 100 characters. */
const NAME = /^[_A-Za-z][_0-9A-Za-z]{0,99}$/;

/**
 * One structured line per GraphQL operation, written with the request's logger, so it carries
 * the request id, and the trace and span ids of the request span (logger.ts adds those to every
 * line). Name, type, outcome, duration and error codes only: variables and the document are never
 * logged, since they can hold anything a client sends. Errors the client was not shown are logged
 * with their cause by error-logging.plugin.ts; the request itself by pino-http.
 */
export function loggingPlugin(
  options: LoggingPluginOptions = {},
): ApolloServerPlugin<GatewayContext> & OperationObserver {
  const enabled = options.enabled ?? true;
  const write = (report: OperationReport, logger: Logger) => {
    const level = report.errorCodes.includes(ErrorCode.INTERNAL_SERVER_ERROR) ? 'warn' : 'info';
    logger[level](
      {
        operation: {
          name: report.name === null ? null : NAME.test(report.name) ? report.name : '(invalid)',
          type: report.type,
          outcome: report.outcome,
          durationMs: Math.round(report.durationMs * 100) / 100,
          ...(report.errorCodes.length ? { errorCodes: report.errorCodes } : {}),
        },
      },
      'graphql operation',
    );
  };

  return {
    async requestDidStart(requestContext) {
      if (!enabled) return;
      return reportingListener(requestContext, (report, rc) => write(report, rc.contextValue.logger));
    },

    operationFinished(report, logger) {
      if (enabled) write(report, logger);
    },
  };
}
