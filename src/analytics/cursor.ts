import { BadUserInputError } from '../graphql/errors.js';

/** Largest page any connection returns (issue 4: `first` capped at 100). */
export const MAX_PAGE_SIZE = 100;
export const DEFAULT_PAGE_SIZE = 20;

/**
 * Opaque keyset cursors: the sort key of the last row of a page, base64url JSON. Clients must not
 * build them; a cursor that does not decode to the expected shape is BAD_USER_INPUT, never a SQL
 * error or a silently different page.
 */
export function encodeCursor(key: readonly string[]): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

export function decodeCursor(cursor: string, parts: number): string[] {
  let key: unknown;
  try {
    key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    key = undefined;
  }
  if (!Array.isArray(key) || key.length !== parts || !key.every((k) => typeof k === 'string' && k.length <= 512)) {
    throw new BadUserInputError('`after` is not a cursor returned by this field');
  }
  return key as string[];
}

/** `first` checked against the cap: a larger page is refused rather than silently shortened. */
export function pageSize(first: number | null | undefined, fallback = DEFAULT_PAGE_SIZE, max = MAX_PAGE_SIZE): number {
  const n = first ?? fallback;
  if (!Number.isInteger(n) || n < 1 || n > max) {
    throw new BadUserInputError(`first must be between 1 and ${max}`, { argument: 'first', max });
  }
  return n;
}
