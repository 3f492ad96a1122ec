import { registerEnumType } from 'type-graphql';

/** The live windows of metricUpdated (lengths in window.ts). */
export enum Window {
  ONE_MINUTE = 'ONE_MINUTE',
  FIVE_MINUTES = 'FIVE_MINUTES',
  ONE_HOUR = 'ONE_HOUR',
}
registerEnumType(Window, { name: 'Window', description: 'A live window: tumbling, aligned to the epoch (UTC).' });
