import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GraphQLError } from 'graphql';
import { formatError } from '../../../src/graphql/format-error.js';
import { ForbiddenError, PayloadTooLargeError } from '../../../src/graphql/errors.js';

describe('formatError (masking)', () => {
  it('passes errors made safe on purpose through unchanged', () => {
    const error = new ForbiddenError('needs admin');
    const formatted = { message: error.message, path: ['x'], extensions: { code: 'FORBIDDEN' } };
    assert.deepEqual(formatError(formatted, new GraphQLError('wrapped', { originalError: error })), formatted);
    const large = new PayloadTooLargeError('too big');
    assert.equal(
      formatError({ message: large.message, extensions: { code: 'PAYLOAD_TOO_LARGE' } }, large).message,
      'too big',
    );
  });

  it('keeps request-level validation errors but masks a resolver borrowing their code', () => {
    const validation = { message: 'Cannot query field "nope"', extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } };
    assert.deepEqual(formatError(validation, new GraphQLError(validation.message)), validation);
    const borrowed = {
      message: 'SELECT * FROM secrets failed',
      path: ['viewer'],
      extensions: { code: 'BAD_USER_INPUT' },
    };
    assert.equal(formatError(borrowed, new Error(borrowed.message)).message, 'Internal server error');
  });

  it('replaces anything else with a generic INTERNAL_SERVER_ERROR, keeping path and locations', () => {
    const leaked = {
      message: 'connect ECONNREFUSED 10.0.0.5:5432',
      path: ['viewer'],
      locations: [{ line: 1, column: 3 }],
      extensions: { code: 'INTERNAL_SERVER_ERROR', stacktrace: ['at pg'] },
    };
    assert.deepEqual(formatError(leaked, new GraphQLError('x', { originalError: new Error(leaked.message) })), {
      message: 'Internal server error',
      path: ['viewer'],
      locations: [{ line: 1, column: 3 }],
      extensions: { code: 'INTERNAL_SERVER_ERROR' },
    });
  });
});
