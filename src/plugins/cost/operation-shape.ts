import { maxAliasesRule } from '@escape.tech/graphql-armor-max-aliases';
import { maxDepthRule } from '@escape.tech/graphql-armor-max-depth';
import { maxDirectivesRule } from '@escape.tech/graphql-armor-max-directives';
import { Kind, validate, type DocumentNode, type GraphQLSchema, type OperationDefinitionNode } from 'graphql';

/** How deep, how aliased and how directive-laden one operation is, fragments included. */
export interface OperationShape {
  readonly depth: number;
  readonly aliases: number;
  readonly directives: number;
}

/**
 * Measures the operation with graphql-armor's counting rules (fragments followed once each,
 * introspection's `__schema` not counted towards depth). Aliases of `__typename` count like any
 * other: graphql-armor leaves them out by default, and 60 of them cost as much to answer as 60 of a
 * cheap field. The
 * rules are given no limit and only report what they found: the caller compares, so that
 * COST_MODE=measure can count what enforcing would refuse, and every refusal gets the contract's
 * COST_LIMIT_EXCEEDED rather than a validation error.
 */
export function measureOperationShape(
  schema: GraphQLSchema,
  document: DocumentNode,
  operation: OperationDefinitionNode,
): OperationShape {
  const found = { depth: 0, aliases: 0, directives: 0 };
  const report = (key: keyof typeof found) => [
    (_ctx: unknown, details: { n: number }) => void (found[key] = Math.max(found[key], details.n)),
  ];
  const n = Number.MAX_SAFE_INTEGER;
  const only: DocumentNode = {
    kind: Kind.DOCUMENT,
    definitions: [operation, ...document.definitions.filter((d) => d.kind === Kind.FRAGMENT_DEFINITION)],
  };
  validate(schema, only, [
    maxDepthRule({ n, onAccept: report('depth') }),
    maxAliasesRule({ n, allowList: [], onAccept: report('aliases') }),
    maxDirectivesRule({ n, onAccept: report('directives') }),
  ]);
  return found;
}
