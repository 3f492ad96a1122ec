import type { Scope } from './scopes.js';

/** Who is calling: resolved from the API key alone, never from arguments. */
export interface Viewer {
  readonly tenantId: string;
  readonly tenantSlug: string;
  readonly keyId: string;
  readonly keyName: string;
  readonly keyPrefix: string;
  readonly scopes: readonly Scope[];
  /** The key's own largest cost per operation; null or absent: COST_MAX_PER_OPERATION. */
  readonly maxOperationCost?: number | null;
}
