import type { ApolloServerPlugin } from '@apollo/server';
import type { RequestContext } from '../auth/request-context.js';
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
 * What each GraphQL operation was: name, type, outcome, duration and error codes only (variables
 * and the document are never logged, since they can hold anything a client sends). Over HTTP it
 * becomes the `operation` field of the request's one log line (http/request-log.ts); a WebSocket
 * operation gets a line of its own, written with the subscription's logger. Errors the client was
 * not shown are logged with their cause by error-logging.plugin.ts.
 */
export function loggingPlugin(
  options: LoggingPluginOptions = {},
): ApolloServerPlugin<RequestContext> & OperationObserver {
  const enabled = options.enabled ?? true;
  const summaryOf = (report: OperationReport) => ({
    name: report.name === null ? null : NAME.test(report.name) ? report.name : '(invalid)',
    type: report.type,
    outcome: report.outcome,
    durationMs: Math.round(report.durationMs * 100) / 100,
    ...(report.errorCodes.length ? { errorCodes: report.errorCodes } : {}),
  });
  const write = (report: OperationReport, logger: Logger) => {
    const level = report.errorCodes.includes(ErrorCode.INTERNAL_SERVER_ERROR) ? 'warn' : 'info';
    logger[level]({ operation: summaryOf(report) }, 'graphql operation');
  };

  return {
    async requestDidStart(requestContext) {
      if (!enabled) return;
      return reportingListener(requestContext, (report, rc) => {
        // Over HTTP the summary joins the request's one line; elsewhere it is a line of its own.
        const sink = rc.contextValue.operationLog;
        if (sink) sink.push(summaryOf(report));
        else write(report, rc.contextValue.logger);
      });
    },

    operationFinished(report, logger) {
      if (enabled) write(report, logger);
    },
  };
}
