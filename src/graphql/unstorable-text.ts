import {
  Kind,
  TypeInfo,
  getNamedType,
  visit,
  visitWithTypeInfo,
  BREAK,
  type DocumentNode,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type ValueNode,
} from 'graphql';

/**
 * What Postgres `text` and `jsonb` cannot hold: the NUL character, and a UTF-16 surrogate without
 * its pair (it has no UTF-8 encoding). Sent on, either fails the statement after the request was
 * accepted; refused up front, it is the client's error, named as such.
 */
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

export const UNSTORABLE_TEXT = 'a NUL character (U+0000) or an unpaired UTF-16 surrogate, which cannot be stored';

export function isStorableText(text: string): boolean {
  return !UNSTORABLE.test(text);
}

/** Where a value sent by a client holds unstorable text: the argument and the path inside it. */
export interface UnstorableText {
  readonly path: string;
}

/**
 * The first string in the operation's arguments (literals, and the variables they use, keys and
 * values of JSON included) that Postgres could not store, or undefined. Arguments whose named
 * input type is in `skipInputTypes` are left to their own validation (EventInput is checked per
 * event by ingest/event-validation.ts, so one bad event does not refuse a whole batch). Both walks
 * keep their own stack: a value nested thousands deep costs no native stack.
 */
// An operation that declares no variables holds only literals, so its answer depends on the
// operation node alone, which Apollo's document store hands back for a repeated document: found
// once, not walked with TypeInfo on every request (null: nothing unstorable).
const literalOnly = new WeakMap<OperationDefinitionNode, WeakMap<ReadonlySet<string>, UnstorableText | null>>();

export function findUnstorableText(
  schema: GraphQLSchema,
  document: DocumentNode,
  operation: OperationDefinitionNode,
  variables: Readonly<Record<string, unknown>> | undefined,
  skipInputTypes: ReadonlySet<string> = NO_SKIP,
): UnstorableText | undefined {
  if (operation.variableDefinitions?.length) return walk(schema, document, operation, variables, skipInputTypes);
  let bySkip = literalOnly.get(operation);
  if (!bySkip) literalOnly.set(operation, (bySkip = new WeakMap()));
  const known = bySkip.get(skipInputTypes);
  if (known !== undefined) return known ?? undefined;
  const found = walk(schema, document, operation, undefined, skipInputTypes);
  bySkip.set(skipInputTypes, found ?? null);
  return found;
}

const NO_SKIP: ReadonlySet<string> = new Set();

function walk(
  schema: GraphQLSchema,
  document: DocumentNode,
  operation: OperationDefinitionNode,
  variables: Readonly<Record<string, unknown>> | undefined,
  skipInputTypes: ReadonlySet<string>,
): UnstorableText | undefined {
  const typeInfo = new TypeInfo(schema);
  let found: UnstorableText | undefined;
  const only: DocumentNode = {
    kind: Kind.DOCUMENT,
    definitions: [operation, ...document.definitions.filter((d) => d.kind === Kind.FRAGMENT_DEFINITION)],
  };
  visit(
    only,
    visitWithTypeInfo(typeInfo, {
      Argument(node) {
        const argument = typeInfo.getArgument();
        if (argument && skipInputTypes.has(getNamedType(argument.type).name)) return false;
        found = inLiteral(node.value, node.name.value, variables);
        return found ? BREAK : false;
      },
      // A directive's arguments (@include(if:)) hold no text that is stored.
      Directive: () => false,
    }),
  );
  return found;
}

function inLiteral(
  root: ValueNode,
  rootPath: string,
  variables: Readonly<Record<string, unknown>> | undefined,
): UnstorableText | undefined {
  const stack: Array<{ node: ValueNode; path: string }> = [{ node: root, path: rootPath }];
  while (stack.length) {
    const { node, path } = stack.pop()!;
    switch (node.kind) {
      case Kind.STRING:
        if (!isStorableText(node.value)) return { path };
        break;
      case Kind.LIST:
        node.values.forEach((value, i) => stack.push({ node: value, path: `${path}[${i}]` }));
        break;
      case Kind.OBJECT:
        for (const field of node.fields) stack.push({ node: field.value, path: `${path}.${field.name.value}` });
        break;
      case Kind.VARIABLE: {
        const hit = inJson(variables?.[node.name.value], path);
        if (hit) return hit;
        break;
      }
      default:
        break;
    }
  }
  return undefined;
}

/** A JSON value (a variable, after JSON.parse): strings and object keys, walked without recursion. */
export function inJson(root: unknown, rootPath: string): UnstorableText | undefined {
  const stack: Array<{ value: unknown; path: string }> = [{ value: root, path: rootPath }];
  while (stack.length) {
    const { value, path } = stack.pop()!;
    if (typeof value === 'string') {
      if (!isStorableText(value)) return { path };
    } else if (Array.isArray(value)) {
      value.forEach((item, i) => stack.push({ value: item, path: `${path}[${i}]` }));
    } else if (value !== null && typeof value === 'object') {
      for (const [key, item] of Object.entries(value)) {
        if (!isStorableText(key)) return { path };
        stack.push({ value: item, path: `${path}.${key}` });
      }
    }
  }
  return undefined;
}
