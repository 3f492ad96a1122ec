import type { RequestContext } from '../auth/request-context.js';
import type { RealtimeService } from './realtime.service.js';

/** What the subscription resolvers reach. */
export interface RealtimeContext extends RequestContext {
  readonly services: { readonly realtime: RealtimeService };
}
