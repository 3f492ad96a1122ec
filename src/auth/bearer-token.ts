import { UnauthenticatedError } from '../graphql/errors.js';

/**
 * The key from an `Authorization: Bearer <key>` header (over HTTP) or the same string in
 * `connectionParams.authorization` (over WebSocket, where a bare key is accepted too).
 * Returns undefined when no credentials were sent; throws when they were sent malformed.
 */
export function parseBearerToken(header: unknown): string | undefined {
  if (header === undefined || header === null || header === '') return undefined;
  if (typeof header !== 'string') throw new UnauthenticatedError('Authorization must be a string');
  const match = /^\s*Bearer\s+(\S+)\s*$/i.exec(header);
  const token = match?.[1];
  if (!token || token.length > 512) {
    throw new UnauthenticatedError('Authorization must be "Bearer <api key>"');
  }
  return token;
}
