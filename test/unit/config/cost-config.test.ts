import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../../src/config/config.js';

describe('loadConfig: cost and request limits', () => {
  it('gives the documented defaults', () => {
    const config = loadConfig({});
    assert.deepEqual(config.cost, {
      mode: 'enforce',
      maxPerOperation: 1000,
      budgetCapacity: 20_000,
      restorePerMinute: 20_000,
      leasePoints: 200,
      leaseMs: 1_000,
    });
    assert.deepEqual(config.requestLimits, {
      maxDepth: 12,
      maxAliases: 30,
      maxDirectives: 50,
      maxTokens: 10_000,
      maxBatchOperations: 10,
    });
  });

  it('reads each setting, and refuses a mode it does not know', () => {
    const config = loadConfig({ COST_MODE: 'measure', COST_MAX_PER_OPERATION: '5000', MAX_QUERY_DEPTH: '20' });
    assert.equal(config.cost.mode, 'measure');
    assert.equal(config.cost.maxPerOperation, 5000);
    assert.equal(config.requestLimits.maxDepth, 20);
    assert.throws(
      () => loadConfig({ COST_MODE: 'strict', MAX_BATCH_OPERATIONS: '0' }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.problems.some((p) => p.startsWith('COST_MODE')) &&
        err.problems.some((p) => p.startsWith('MAX_BATCH_OPERATIONS')),
    );
  });
});
