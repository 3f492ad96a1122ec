import { registerEnumType } from 'type-graphql';

export enum UserOrder {
  LAST_SEEN = 'LAST_SEEN',
  EVENT_COUNT = 'EVENT_COUNT',
}
registerEnumType(UserOrder, { name: 'UserOrder', description: 'Sort order of users, always descending.' });
