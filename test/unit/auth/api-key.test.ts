import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { API_KEY_PATTERN, apiKeyPrefix, generateApiKey, hashApiKey } from '../../../src/auth/api-key.js';
import { parseBearerToken } from '../../../src/auth/bearer-token.js';
import { grants, isScope } from '../../../src/auth/scopes.js';
import { UnauthenticatedError } from '../../../src/graphql/errors.js';

describe('API keys', () => {
  it('are 32 random bytes behind a recognisable marker, never repeated', () => {
    const keys = new Set(Array.from({ length: 1000 }, generateApiKey));
    assert.equal(keys.size, 1000);
    for (const key of [...keys].slice(0, 20)) {
      assert.match(key, /^agk_[A-Za-z0-9_-]{43}$/);
      assert.equal(Buffer.from(key.slice(4), 'base64url').length, 32);
      assert.ok(key.match(API_KEY_PATTERN), 'log masking recognises a generated key');
    }
  });

  it('are stored as a SHA-256 hash and found by a 12-character prefix', () => {
    const key = generateApiKey();
    assert.equal(hashApiKey(key).length, 32);
    assert.deepEqual(hashApiKey(key), hashApiKey(key));
    assert.notDeepEqual(hashApiKey(key), hashApiKey(key + 'x'));
    assert.equal(apiKeyPrefix(key), key.slice(0, 12));
    assert.equal(apiKeyPrefix('k'), 'k');
  });
});

describe('parseBearerToken', () => {
  it('reads "Bearer <key>" in any case, and nothing from an absent header', () => {
    assert.equal(parseBearerToken('Bearer abc'), 'abc');
    assert.equal(parseBearerToken('bearer   abc  '), 'abc');
    assert.equal(parseBearerToken(undefined), undefined);
    assert.equal(parseBearerToken(''), undefined);
  });

  it('refuses malformed credentials with UNAUTHENTICATED', () => {
    for (const header of ['Basic dXNlcjpwYXNz', 'Bearer', 'Bearer a b', 'abc', 'Bearer ' + 'x'.repeat(600), 42]) {
      assert.throws(
        () => parseBearerToken(header),
        (err: unknown) => err instanceof UnauthenticatedError && err.code === 'UNAUTHENTICATED',
      );
    }
  });
});

describe('scopes', () => {
  it('admin implies the other scopes; the others imply nothing', () => {
    assert.equal(grants(['admin'], 'events:write'), true);
    assert.equal(grants(['admin'], 'analytics:read'), true);
    assert.equal(grants(['events:write'], 'analytics:read'), false);
    assert.equal(grants(['analytics:read'], 'admin'), false);
    assert.equal(isScope('events:write'), true);
    assert.equal(isScope('events:*'), false);
  });
});
