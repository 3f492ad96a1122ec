import type { GatewayContext } from '../graphql/context.js';
import { UnauthenticatedError } from '../graphql/errors.js';
import type { AnalyticsScope } from './analytics.service.js';

/**
 * The request's analytics scope. The context function builds it for every authenticated request;
 * `@Authorized` has refused requests without a viewer before any resolver gets here.
 */
export function analyticsScope(ctx: GatewayContext): AnalyticsScope {
  if (!ctx.analytics) throw new UnauthenticatedError();
  return ctx.analytics;
}
