import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { print } from 'graphql';

export interface GraphqlResponse<TData> {
  readonly status: number;
  readonly headers: Headers;
  readonly data?: TData | null;
  readonly errors?: Array<{ message: string; path?: string[]; extensions?: Record<string, unknown> }>;
}

/** POSTs a typed operation (from test/generated) to a gateway, as a client would. */
export async function gql<TData, TVariables>(
  url: string,
  document: TypedDocumentNode<TData, TVariables>,
  options: { variables?: TVariables; key?: string; headers?: Record<string, string> } = {},
): Promise<GraphqlResponse<TData>> {
  const response = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(options.key ? { authorization: `Bearer ${options.key}` } : {}),
      ...options.headers,
    },
    body: JSON.stringify({ query: print(document), variables: options.variables }),
  });
  const body = (await response.json()) as Omit<GraphqlResponse<TData>, 'status' | 'headers'>;
  return { status: response.status, headers: response.headers, ...body };
}

/** The `extensions.code` of the first error, for assertions. */
export function errorCode(response: GraphqlResponse<unknown>): unknown {
  return response.errors?.[0]?.extensions?.code;
}
