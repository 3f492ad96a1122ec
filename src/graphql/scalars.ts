import { DateTimeResolver, JSONResolver, SafeIntResolver } from 'graphql-scalars';

/**
 * The contract's scalars (docs/contract.md): `DateTime` is ISO-8601 on the wire and a Date inside,
 * `JSON` any JSON value, `SafeInt` a count that may pass 2^31 but stays within 2^53.
 * graphql-scalars implements and tests them; we only fix their names here.
 */
export const DateTimeScalar = DateTimeResolver;
export const JSONScalar = JSONResolver;
export const SafeIntScalar = SafeIntResolver;
