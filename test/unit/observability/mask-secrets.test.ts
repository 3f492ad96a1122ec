import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { generateApiKey } from '../../../src/auth/api-key.js';
import { createLogger } from '../../../src/observability/logger.js';
import { maskSecrets } from '../../../src/observability/mask-secrets.js';

describe('secret masking in logs', () => {
  it('masks API keys and bearer tokens in free text, keeping the public prefix', () => {
    const key = generateApiKey();
    const masked = maskSecrets(`key ${key} and header Bearer s3cr3t-token, done`);
    assert.ok(!masked.includes(key));
    assert.ok(!masked.includes('s3cr3t-token'));
    assert.ok(masked.includes(key.slice(0, 12)));
    assert.equal(
      maskSecrets('event 0190b7a2-7d3c-7c1e-9f00-3f2b1c0d4e5f at 2026-11-22T01:00:00Z'),
      'event 0190b7a2-7d3c-7c1e-9f00-3f2b1c0d4e5f at 2026-11-22T01:00:00Z',
    );
  });

  it('never writes an Authorization header, a key field or a key in a message or error', () => {
    const key = generateApiKey();
    let written = '';
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        written += chunk.toString();
        done();
      },
    });
    const logger = createLogger({ log: { level: 'info' } }, sink);
    logger.info({ req: { headers: { authorization: `Bearer ${key}` } } }, 'request');
    logger.info({ apiKey: key, config: { auth: { bootstrapApiKey: key } } }, 'fields');
    logger.info(`message mentioning ${key}`);
    logger.error({ err: new Error(`lookup of ${key} failed`) }, 'error');
    assert.equal(written.trim().split('\n').length, 4);
    assert.ok(!written.includes(key.slice(12)), written);
    assert.match(written, /\[REDACTED\]/);
  });
});
