import { Field, Float, InputType } from 'type-graphql';
import { DateTimeScalar, JSONScalar } from '../graphql/scalars.js';
import type { EventInputLike } from './event-validation.js';

@InputType('EventInput', { description: 'One analytics event. Limits are checked per event; see recordEvents.' })
export class EventInput implements EventInputLike {
  @Field(() => String, { description: '1..128 characters of [A-Za-z0-9_.:-].' })
  type!: string;

  @Field(() => String, { nullable: true, description: "The tenant's id for the user, up to 256 characters." })
  userId?: string | null;

  @Field(() => String, { nullable: true, description: 'Up to 256 characters.' })
  sessionId?: string | null;

  @Field(() => String, {
    nullable: true,
    description: 'Idempotency key, up to 128 characters: a repeat within the dedupe window is answered as a duplicate.',
  })
  messageId?: string | null;

  @Field(() => DateTimeScalar, {
    nullable: true,
    description:
      'When the event happened by the client clock; defaults to receipt; more than 1 h ahead is clamped to receipt.',
  })
  timestamp?: Date | null;

  @Field(() => Float, { nullable: true, description: 'A finite numeric measure, aggregated by metrics.' })
  value?: number | null;

  @Field(() => JSONScalar, { nullable: true, description: 'A JSON object of at most 32 KiB serialized.' })
  properties?: unknown;
}
