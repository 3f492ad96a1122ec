import type { RequestContext } from '../auth/request-context.js';
import { UnauthenticatedError } from '../graphql/errors.js';
import type { AnalyticsScope, AnalyticsService } from './analytics.service.js';

/** What the analytics resolvers reach: the service, and this request's tenant-bound loaders. */
export interface AnalyticsContext extends RequestContext {
  readonly services: { readonly analytics: AnalyticsService };
  /** The viewer's tenant and this request's DataLoaders; null without a viewer. */
  readonly analytics: AnalyticsScope | null;
}

/**
 * The request's analytics scope. The context function builds it for every authenticated request;
 * `@Authorized` has refused requests without a viewer before any resolver gets here.
 */
export function analyticsScope(ctx: AnalyticsContext): AnalyticsScope {
  if (!ctx.analytics) throw new UnauthenticatedError();
  return ctx.analytics;
}
