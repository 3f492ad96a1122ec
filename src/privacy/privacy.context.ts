import type { RequestContext } from '../auth/request-context.js';
import type { UserErasureService } from './user-erasure.service.js';

/** What the erasure resolver reaches. */
export interface PrivacyContext extends RequestContext {
  readonly services: { readonly userErasure: UserErasureService };
}
