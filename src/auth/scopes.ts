/** The scopes a key can hold. `admin` implies the other two within its own tenant (docs/contract.md). */
export const SCOPES = ['events:write', 'analytics:read', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export function isScope(value: string): value is Scope {
  return (SCOPES as readonly string[]).includes(value);
}

export function grants(held: readonly Scope[], required: Scope): boolean {
  return held.includes(required) || held.includes('admin');
}
