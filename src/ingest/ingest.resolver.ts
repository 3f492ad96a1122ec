import { Arg, Authorized, Ctx, Int, Mutation, Resolver } from 'type-graphql';
import type { IngestContext } from './ingest.context.js';
import { BadUserInputError } from '../graphql/errors.js';
import { DateTimeScalar } from '../graphql/scalars.js';
import { EventInput } from './event-input.type.js';
import { RecordEventPayload, RecordEventsPayload } from './record-event.payload.js';

const MAX_REPLAY = 10_000;

@Resolver()
export class IngestResolver {
  @Authorized('events:write')
  @Mutation(() => RecordEventPayload, {
    description: 'Records one event; invalid input fails the whole call with BAD_USER_INPUT.',
  })
  async recordEvent(
    @Arg('input', () => EventInput) input: EventInput,
    @Ctx() { viewer, services, deadline }: IngestContext,
  ): Promise<RecordEventPayload> {
    const result = await services.ingest.record(viewer!.tenantId, [input], undefined, deadline);
    const error = result.errors[0];
    if (error) throw new BadUserInputError(error.message);
    return { id: result.ids[0]!, duplicate: result.duplicate[0]! };
  }

  @Authorized('events:write')
  @Mutation(() => RecordEventsPayload, {
    description:
      'Records a batch (at most INGEST_MAX_BATCH events, default 1000). A bad event is reported in errors and does not reject the others. sentAt (the client clock at sending) corrects clock skew.',
  })
  async recordEvents(
    @Arg('events', () => [EventInput]) events: EventInput[],
    @Arg('sentAt', () => DateTimeScalar, { nullable: true }) sentAt: Date | null,
    @Ctx() { viewer, services, deadline }: IngestContext,
  ): Promise<RecordEventsPayload> {
    const result = await services.ingest.record(viewer!.tenantId, events, sentAt ?? undefined, deadline);
    return { accepted: result.accepted, duplicates: result.duplicates, ids: result.ids, errors: result.errors };
  }

  @Authorized('admin')
  @Mutation(() => Int, {
    description: "Puts up to `limit` (default 100) of the tenant's dead-lettered events back on the stream.",
  })
  async replayDeadLetters(
    @Arg('limit', () => Int, { nullable: true }) limit: number | null,
    @Ctx() { viewer, services }: IngestContext,
  ): Promise<number> {
    const n = limit ?? 100;
    if (n < 1 || n > MAX_REPLAY) throw new BadUserInputError(`limit must be 1..${MAX_REPLAY}`);
    return services.deadLetters.replay(viewer!.tenantId, n);
  }
}
