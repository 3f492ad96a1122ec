import DataLoader from 'dataloader';
import type { EventReadRepository, EventRow, UserSeen } from './event-read.repository.js';
import type { Freshness, RollupRepository } from './rollup.repository.js';
import type { UserRepository, UserRow } from './user.repository.js';

export interface LatestEventsKey {
  readonly userId: string;
  /** The user's first and last event times as the rollup knows them: narrow the search (not part of the key). */
  readonly seen?: UserSeen | null;
  readonly first: number;
  readonly type: string | null;
}

/**
 * The DataLoaders of one request, bound to the viewer's tenant. Built by the context function for
 * every request and dropped with it: nothing cached here outlives a request or crosses tenants.
 * Every relation of the query API resolves through one of these, so a query costs one statement
 * per level of nesting whatever the sizes of its lists.
 */
export function createAnalyticsLoaders(
  repositories: { events: EventReadRepository; users: UserRepository; rollups: RollupRepository },
  tenantId: string,
) {
  const { events, users, rollups } = repositories;
  let freshness: Promise<Freshness[]> | undefined;
  return {
    event: new DataLoader<string, EventRow | null>(async (ids) => {
      const byId = new Map((await events.byIds(tenantId, ids)).map((e) => [e.id, e]));
      return ids.map((id) => byId.get(id) ?? null);
    }),

    user: new DataLoader<string, UserRow | null>(async (ids) => {
      const byId = new Map((await users.byIds(tenantId, ids)).map((u) => [u.id, u]));
      return ids.map((id) => byId.get(id) ?? null);
    }),

    /** A user's latest events: one statement per distinct (first, type) among the keys of a tick. */
    latestEvents: new DataLoader<LatestEventsKey, EventRow[], string>(
      async (keys) => {
        const groups = new Map<
          string,
          { first: number; type: string | null; users: { id: string; seen: UserSeen | null }[] }
        >();
        for (const k of keys) {
          const id = `${k.first}\u0000${k.type ?? ''}`;
          const group = groups.get(id) ?? { first: k.first, type: k.type, users: [] };
          group.users.push({ id: k.userId, seen: k.seen ?? null });
          groups.set(id, group);
        }
        const results = new Map(
          await Promise.all(
            [...groups].map(
              async ([id, g]) => [id, await events.latestByUsers(tenantId, g.users, g.first, g.type)] as const,
            ),
          ),
        );
        return keys.map((k) => results.get(`${k.first}\u0000${k.type ?? ''}`)?.get(k.userId) ?? []);
      },
      { cacheKeyFn: (k) => `${k.first}\u0000${k.type ?? ''}\u0000${k.userId}` },
    ),

    /** The rollups' refresh times, read once per request. */
    freshness: (): Promise<Freshness[]> => (freshness ??= rollups.freshness()),
  };
}

export type AnalyticsLoaders = ReturnType<typeof createAnalyticsLoaders>;
