import type { Scope } from './scopes.js';

/** Who is calling: resolved from the API key alone, never from arguments. */
export interface Viewer {
  readonly tenantId: string;
  readonly tenantSlug: string;
  readonly keyId: string;
  readonly keyName: string;
  readonly keyPrefix: string;
  readonly scopes: readonly Scope[];
}
