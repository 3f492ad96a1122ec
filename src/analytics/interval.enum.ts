import { registerEnumType } from 'type-graphql';

export enum Interval {
  MINUTE = 'MINUTE',
  HOUR = 'HOUR',
  DAY = 'DAY',
}
registerEnumType(Interval, { name: 'Interval', description: 'Bucket width of a time series (UTC).' });
