import { Arg, Authorized, Ctx, ID, Int, Mutation, Resolver } from 'type-graphql';
import type { AuthContext } from './auth.context.js';
import { BadUserInputError } from '../graphql/errors.js';
import type { ApiKeyRecord } from './api-key.repository.js';
import { ApiKeyType, CreatedApiKeyType } from './api-key.type.js';

@Resolver(() => ApiKeyType)
export class ApiKeyResolver {
  @Authorized('admin')
  @Mutation(() => CreatedApiKeyType, {
    description:
      "Creates a key in the caller's tenant. The plaintext key is returned once. maxOperationCost (1..10,000,000) is the key's own largest cost per operation; omitted, the gateway's default applies.",
  })
  async createApiKey(
    @Arg('name', () => String) name: string,
    @Arg('scopes', () => [String]) scopes: string[],
    // Optional, so the contract's two-argument call still works; described on the mutation.
    @Arg('maxOperationCost', () => Int, { nullable: true })
    maxOperationCost: number | null,
    @Ctx() { viewer, services }: AuthContext,
  ): Promise<CreatedApiKeyType> {
    const created = await services.apiKeys.createKey({
      tenantSlug: viewer!.tenantSlug,
      name,
      scopes,
      maxOperationCost,
    });
    return { apiKey: toApiKeyType(created.apiKey), key: created.plaintext };
  }

  @Authorized('admin')
  @Mutation(() => ApiKeyType, {
    description: "Revokes a key of the caller's tenant; every replica refuses it within seconds.",
  })
  async revokeApiKey(@Arg('id', () => ID) id: string, @Ctx() { viewer, services }: AuthContext): Promise<ApiKeyType> {
    const revoked = await services.apiKeys.revokeKey(id, viewer!.tenantId);
    // A key of another tenant is reported exactly like a missing one.
    if (!revoked) throw new BadUserInputError('No API key with this id in your tenant');
    return toApiKeyType(revoked);
  }
}

function toApiKeyType(record: ApiKeyRecord): ApiKeyType {
  return {
    id: record.id,
    name: record.name,
    prefix: record.prefix,
    scopes: record.scopes,
    createdAt: record.createdAt,
    revokedAt: record.revokedAt,
    lastUsedAt: record.lastUsedAt,
    maxOperationCost: record.maxOperationCost,
  };
}
