import { Authorized, Ctx, Query, Resolver } from 'type-graphql';
import type { GatewayContext } from '../graphql/context.js';
import { ViewerType } from './viewer.type.js';

@Resolver(() => ViewerType)
export class ViewerResolver {
  @Authorized()
  @Query(() => ViewerType, { description: 'Who the API key belongs to and what it may do.' })
  viewer(@Ctx() { viewer }: GatewayContext): ViewerType {
    // The auth checker has already refused a request without a viewer.
    return { tenant: viewer!.tenantSlug, keyName: viewer!.keyName, scopes: [...viewer!.scopes] };
  }
}
