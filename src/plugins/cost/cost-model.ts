import {
  GraphQLIncludeDirective,
  GraphQLSkipDirective,
  Kind,
  getArgumentValues,
  getDirectiveValues,
  getNamedType,
  getNullableType,
  getVariableValues,
  isAbstractType,
  isLeafType,
  isListType,
  isObjectType,
  type DocumentNode,
  type FragmentDefinitionNode,
  type GraphQLCompositeType,
  type GraphQLField,
  type GraphQLObjectType,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from 'graphql';
import { getComplexity, type ComplexityEstimator } from 'graphql-query-complexity';
import { FIELD_COSTS, type FieldCost, type SizeRule } from './field-costs.js';

/** A declared cost, or one the general rules infer for a field the table does not list. */
type Rule =
  | FieldCost
  /** Scalars and enums: the row they belong to is what costs. */
  | { readonly kind: 'leaf' }
  /** Introspection (`__schema`, `__type`, `__typename`): free, bounded by the depth and token limits. */
  | { readonly kind: 'introspection' }
  /** A connection's `edges`: one edge's selection, the connection multiplies it by its page size. */
  | { readonly kind: 'edges' };

/** The page-size convention of every connection (README: `first` at most 100, default 20). */
const CONNECTION_PAGE: SizeRule = { arg: 'first', default: 20, max: 100 };
/** A mutation or subscription field that declares nothing costs what Shopify charges a mutation. */
const DEFAULT_OPERATION_COST = 10;
/** Fields examined per operation, fragments expanded each time they are spread: bounds the analysis itself. */
export const MAX_QUERY_NODES = 10_000;

/** Thrown when an operation selects more than MAX_QUERY_NODES fields once fragments are expanded. */
export class TooManyNodesError extends Error {}

function ruleOf(schema: GraphQLSchema, parent: GraphQLCompositeType, field: GraphQLField<unknown, unknown>): Rule {
  const declared = FIELD_COSTS[`${parent.name}.${field.name}`];
  if (declared) return declared;
  if (parent.name.startsWith('__') || field.name.startsWith('__')) return { kind: 'introspection' };
  if (parent === schema.getMutationType() || parent === schema.getSubscriptionType()) {
    return { kind: 'operation', cost: DEFAULT_OPERATION_COST };
  }
  const named = getNamedType(field.type);
  if (isLeafType(named)) return { kind: 'leaf' };
  const isList = isListType(getNullableType(field.type));
  // Page information comes with the page the connection already paid for.
  if (named.name === 'PageInfo' && !isList) return { kind: 'included' };
  if (isList && field.name === 'edges' && parent.name.endsWith('Connection')) return { kind: 'edges' };
  if (!isList && named.name.endsWith('Connection') && field.args.some((a) => a.name === 'first')) {
    return { kind: 'connection', size: CONNECTION_PAGE };
  }
  if (!isList) return { kind: 'object' };
  throw new Error(
    `the cost of list field ${parent.name}.${field.name} is not declared: add it to FIELD_COSTS (plugins/cost/field-costs.ts)`,
  );
}

function sizeOf(rule: SizeRule, args: Record<string, unknown>): number {
  if ('fixed' in rule) return rule.fixed;
  if ('fromArgs' in rule) return Math.max(0, rule.fromArgs(args));
  const value = args[rule.arg];
  // Outside 1..max the service refuses the call; charging the maximum keeps the estimate an upper bound.
  return typeof value === 'number' && value >= 0 ? Math.min(value, rule.max) : rule.default;
}

function ownCost(rule: Rule, args: Record<string, unknown>): number {
  switch (rule.kind) {
    case 'object':
    case 'list':
      return rule.cost ?? 1;
    case 'connection':
      return rule.cost ?? 2;
    case 'operation':
      return typeof rule.cost === 'function' ? rule.cost(args) : rule.cost;
    default:
      return 0;
  }
}

function requestedCost(rule: Rule, args: Record<string, unknown>, child: number): number {
  switch (rule.kind) {
    case 'leaf':
    case 'introspection':
    case 'included':
      return 0;
    case 'edges':
      return child;
    case 'object':
    case 'operation':
      return ownCost(rule, args) + child;
    case 'list':
      return sizeOf(rule.size, args) * (ownCost(rule, args) + child);
    case 'connection':
      return ownCost(rule, args) + sizeOf(rule.size, args) * child;
  }
}

/** The selected operation with the fragments it may use: what getComplexity should see. */
function operationDocument(document: DocumentNode, operation: OperationDefinitionNode): DocumentNode {
  return {
    kind: Kind.DOCUMENT,
    definitions: [operation, ...document.definitions.filter((d) => d.kind === Kind.FRAGMENT_DEFINITION)],
  };
}

export interface CostModel {
  /**
   * The cost before execution: every field as the rules above price it, lists at the size their
   * arguments ask for, fragments expanded where spread, aliases counted once each, fields left out
   * by @skip/@include not counted. Throws TooManyNodesError past MAX_QUERY_NODES, and graphql's
   * error when the variables do not fit (execution refuses those before any resolver runs).
   */
  requested(document: DocumentNode, operation: OperationDefinitionNode, variables?: Record<string, unknown>): number;
  /**
   * The same sum over what was returned: lists at the length they came back with. Never above
   * `requested` for the same operation; equal when every list is full.
   */
  actual(
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: Record<string, unknown> | undefined,
    data: Record<string, unknown> | null | undefined,
  ): number;
}

/**
 * The cost model of one schema (README, "Cost limits"). Checks at construction that FIELD_COSTS
 * names only fields of the schema and that every list of objects is declared, so a new list field
 * cannot go unpriced.
 */
export function costModel(schema: GraphQLSchema): CostModel {
  for (const key of Object.keys(FIELD_COSTS)) {
    const [typeName, fieldName] = key.split('.');
    const type = schema.getType(typeName!);
    if (!isObjectType(type) || !type.getFields()[fieldName!]) {
      throw new Error(`FIELD_COSTS declares ${key}, which the schema does not have`);
    }
  }
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || type.name.startsWith('__')) continue;
    for (const field of Object.values(type.getFields())) ruleOf(schema, type, field);
  }

  const estimator: ComplexityEstimator = ({ type, field, args, childComplexity }) =>
    requestedCost(ruleOf(schema, type, field), args, childComplexity);

  return {
    requested(document, operation, variables) {
      try {
        return getComplexity({
          schema,
          query: operationDocument(document, operation),
          variables: variables ?? {},
          estimators: [estimator],
          maxQueryNodes: MAX_QUERY_NODES,
        });
      } catch (err) {
        if ((err as Error).message.includes('maximum allowed number of nodes')) {
          throw new TooManyNodesError(`the operation selects more than ${MAX_QUERY_NODES} fields`);
        }
        throw err;
      }
    },

    actual(document, operation, variables, data) {
      const root = schema.getRootType(operation.operation);
      if (!root || !data) return 0;
      const { coerced } = getVariableValues(schema, operation.variableDefinitions ?? [], variables ?? {});
      if (!coerced) return 0;
      const fragments = new Map<string, FragmentDefinitionNode>();
      for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);

      const included = (node: { directives?: readonly unknown[] }) => {
        const n = node as Parameters<typeof getDirectiveValues>[1];
        if (getDirectiveValues(GraphQLSkipDirective, n, coerced)?.if === true) return false;
        return getDirectiveValues(GraphQLIncludeDirective, n, coerced)?.if !== false;
      };

      // What each selection set costs per object it is applied to, worked out once per operation:
      // a list of 100 items walks its plan 100 times, not its AST with its directives and rules.
      interface Step {
        readonly key: string;
        readonly kind: 'edges' | 'object' | 'operation' | 'connection' | 'list';
        readonly own: number;
        readonly child?: { readonly type: GraphQLObjectType; readonly set: SelectionSetNode };
      }
      const plans = new Map<SelectionSetNode, Map<GraphQLObjectType, Step[]>>();
      const plan = (type: GraphQLObjectType, selectionSet: SelectionSetNode): Step[] => {
        let byType = plans.get(selectionSet);
        const cached = byType?.get(type);
        if (cached) return cached;
        const steps: Step[] = [];
        for (const selection of selectionSet.selections) {
          if (!included(selection)) continue;
          if (selection.kind !== Kind.FIELD) {
            const fragment = selection.kind === Kind.FRAGMENT_SPREAD ? fragments.get(selection.name.value) : selection;
            const condition = fragment?.typeCondition ? schema.getType(fragment.typeCondition.name.value) : type;
            if (fragment && condition && (condition === type || isAbstractType(condition))) {
              steps.push(...plan(type, fragment.selectionSet));
            }
            continue;
          }
          const field = type.getFields()[selection.name.value];
          if (!field) continue;
          const rule = ruleOf(schema, type, field);
          if (rule.kind === 'leaf' || rule.kind === 'introspection' || rule.kind === 'included') continue;
          const args = rule.kind === 'operation' ? getArgumentValues(field, selection, coerced) : {};
          const named = getNamedType(field.type);
          steps.push({
            key: selection.alias?.value ?? selection.name.value,
            kind: rule.kind,
            own: ownCost(rule, args),
            child:
              selection.selectionSet && isObjectType(named) ? { type: named, set: selection.selectionSet } : undefined,
          });
        }
        if (!byType) plans.set(selectionSet, (byType = new Map()));
        byType.set(type, steps);
        return steps;
      };

      const walk = (
        type: GraphQLObjectType,
        selectionSet: SelectionSetNode,
        value: Record<string, unknown>,
      ): number => {
        let sum = 0;
        for (const step of plan(type, selectionSet)) {
          const result = value[step.key];
          // Absent: nulled by an error above it, or never reached; nothing of it was served.
          if (result === undefined) continue;
          const child = (item: unknown) =>
            step.child && item && typeof item === 'object'
              ? walk(step.child.type, step.child.set, item as Record<string, unknown>)
              : 0;
          if (step.kind === 'edges' || step.kind === 'list') {
            if (!Array.isArray(result)) continue;
            for (const item of result) sum += (step.kind === 'list' ? step.own : 0) + child(item);
          } else {
            sum += step.own + child(result);
          }
        }
        return sum;
      };

      return walk(root, operation.selectionSet, data);
    },
  };
}
