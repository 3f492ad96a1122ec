import { Field, Float, Int, ObjectType } from 'type-graphql';

// simpleResolvers: plain properties, read directly by graphql-js (why: analytics/stats.type.ts).
@ObjectType('CostBudget', {
  simpleResolvers: true,
  description:
    "The API key's cost budget (the same numbers as a response's extensions.cost): it refills continuously up to maximumAvailable; each operation is charged its requested cost before it runs, and what it did not use is refunded after.",
})
export class CostBudgetType {
  @Field(() => Int, { description: 'Points the budget holds when full.' })
  maximumAvailable!: number;

  @Field(() => Int, { description: 'Points left now, after this operation was charged.' })
  currentlyAvailable!: number;

  @Field(() => Float, { description: 'Points restored per second.' })
  restoreRate!: number;

  @Field(() => Int, { description: 'The largest cost one operation of this key may request.' })
  maxOperationCost!: number;
}
