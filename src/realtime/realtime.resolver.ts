import { Arg, Authorized, Resolver, Root, Subscription } from 'type-graphql';
import { Event } from '../analytics/event.type.js';
import type { RealtimeContext } from './realtime.context.js';
import { UnauthenticatedError } from '../graphql/errors.js';
import { MetricWindow } from './metric-window.type.js';
import { Window } from './window.enum.js';
import type { LiveEventRow } from './realtime.service.js';
import type { WindowSnapshot } from './window-store.js';

function tenantOf(context: unknown): string {
  const viewer = (context as RealtimeContext).viewer;
  if (!viewer) throw new UnauthenticatedError();
  return viewer.tenantId;
}

/**
 * Live subscriptions, over graphql-ws only (Apollo Server serves no subscriptions; see
 * websocket.server.ts). The tenant comes from the connection's key; the channels carry it.
 */
@Resolver()
export class RealtimeResolver {
  @Authorized('analytics:read')
  @Subscription(() => MetricWindow, {
    description:
      "The current window of the tenant's events (type null: all of them) at once, then each update: at most one per push interval, the latest state, and a last one with final: true.",
    subscribe: ({ args, context }) =>
      (context as RealtimeContext).services.realtime.windowUpdates(
        tenantOf(context),
        (args.type as string | null | undefined) ?? null,
        args.window as Window,
      ),
  })
  metricUpdated(
    @Root() snapshot: WindowSnapshot,
    @Arg('window', () => Window) _window: Window,
    @Arg('type', () => String, { nullable: true }) _type: string | null,
  ): MetricWindow {
    return snapshot as MetricWindow;
  }

  @Authorized('analytics:read')
  @Subscription(() => Event, {
    description:
      "Each of the tenant's events (of one type, or all) once it is counted in the live windows, with its cursor. With `after` (the cursor of the last event seen), first the events the event stream still holds after it, then live ones, none twice; a cursor older than the stream retains is BAD_USER_INPUT.",
    subscribe: ({ args, context }) =>
      (context as RealtimeContext).services.realtime.events(
        tenantOf(context),
        (args.type as string | null | undefined) ?? null,
        (args.after as string | null | undefined) ?? null,
      ),
  })
  eventRecorded(
    @Root() event: LiveEventRow,
    @Arg('type', () => String, { nullable: true }) _type: string | null,
    @Arg('after', () => String, {
      nullable: true,
      description: 'The cursor of the last event seen: resume after it.',
    })
    _after: string | null,
  ): LiveEventRow {
    return event;
  }
}
