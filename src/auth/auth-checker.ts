import type { AuthCheckerFn } from 'type-graphql';
import type { RequestContext } from './request-context.js';
import { ForbiddenError, UnauthenticatedError } from '../graphql/errors.js';
import { grants, type Scope } from './scopes.js';

/**
 * type-graphql's check for `@Authorized(...scopes)`: no viewer is UNAUTHENTICATED; a viewer that
 * holds none of the listed scopes (admin counts as all of them) is FORBIDDEN. `@Authorized()`
 * with no scope admits any valid key. Throwing our own errors keeps the contract's codes.
 */
export const authChecker: AuthCheckerFn<RequestContext, Scope> = ({ context }, required) => {
  const viewer = context.viewer;
  if (!viewer) throw new UnauthenticatedError();
  if (required.length === 0 || required.some((scope) => grants(viewer.scopes, scope))) return true;
  throw new ForbiddenError(`This operation needs the scope ${required.join(' or ')}`);
};
