import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { generateApiKey } from '../../../src/auth/api-key.js';
import { createLogger } from '../../../src/observability/logger.js';
import { maskSecrets } from '../../../src/observability/mask-secrets.js';

/** A logger as the gateway builds one, writing into a string instead of stdout. */
function capturingLogger() {
  let text = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString();
      done();
    },
  });
  return { logger: createLogger({ log: { level: 'info' } }, sink), written: () => text };
}

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
    const { logger, written } = capturingLogger();
    logger.info({ req: { headers: { authorization: `Bearer ${key}` } } }, 'request');
    logger.info({ apiKey: key, config: { auth: { bootstrapApiKey: key } } }, 'fields');
    logger.info(`message mentioning ${key}`);
    logger.error({ err: new Error(`lookup of ${key} failed`) }, 'error');
    assert.equal(written().trim().split('\n').length, 4);
    assert.ok(!written().includes(key.slice(12)), written());
    assert.match(written(), /\[REDACTED\]/);
  });

  it('masks personal data inside a structured field, with the line still valid JSON', () => {
    const { logger, written } = capturingLogger();
    logger.info(
      { user: { email: 'jane.doe@example.com', note: 'card\n4111 1111 1111 1111', phone: '+44 20 7946 0958' } },
      'signup',
    );
    const line = JSON.parse(written()) as { user: Record<string, string> };
    assert.deepEqual(line.user, {
      email: '[REDACTED:email]',
      note: 'card\n[REDACTED:card]',
      phone: '[REDACTED:phone]',
    });
  });
});

/** [input, expected output]: each personal-data kind masked, and the look-alikes left alone. */
const MASKED: ReadonlyArray<readonly [string, string]> = [
  ['mail jane.doe+news@example.co.uk now', 'mail [REDACTED:email] now'],
  ['{"email":"Bob_1@sub.example.org"}', '{"email":"[REDACTED:email]"}'],
  ['line\\nx@y.io', 'line\\n[REDACTED:email]'],
  ['visa 4111 1111 1111 1111 ok', 'visa [REDACTED:card] ok'],
  ['visa 4111-1111-1111-1111', 'visa [REDACTED:card]'],
  ['mc 5555555555554444', 'mc [REDACTED:card]'],
  ['amex 378282246310005.', 'amex [REDACTED:card].'],
  ['amex 3782 822463 10005', 'amex [REDACTED:card]'],
  ['discover "6011111111111117"', 'discover "[REDACTED:card]"'],
  ['call +44 20 7946 0958', 'call [REDACTED:phone]'],
  ['call +1 (415) 555-2671', 'call [REDACTED:phone]'],
  ['call +4915123456789', 'call [REDACTED:phone]'],
  ['call +44 (0)20 7946 0958', 'call [REDACTED:phone]'],
  ['us (415) 555-2671', 'us [REDACTED:phone]'],
  ['us 415-555-2671', 'us [REDACTED:phone]'],
  ['us 415.555.2671', 'us [REDACTED:phone]'],
  ['uk 020 7946 0958', 'uk [REDACTED:phone]'],
  ['fr 06 12 34 56 78', 'fr [REDACTED:phone]'],
  ['de 0151-2345-6789', 'de [REDACTED:phone]'],
  ['ssn 123-45-6789', 'ssn [REDACTED:national-id]'],
  ['nino JG 12 34 56 C', 'nino [REDACTED:national-id]'],
  ['nino AB123456D', 'nino [REDACTED:national-id]'],
  ['iban GB82 WEST 1234 5698 7654 32', 'iban [REDACTED:iban]'],
  ['iban GB82WEST12345698765432', 'iban [REDACTED:iban]'],
  ['iban DE89370400440532013000', 'iban [REDACTED:iban]'],
  ['iban FR1420041010050500013M02606', 'iban [REDACTED:iban]'],
  ['iban NO9386011117947', 'iban [REDACTED:iban]'],
  ['auth Bearer eyJhbGciOi.abc', 'auth Bearer [REDACTED]'],
  ['"authorization":"Bearer tok-12345678\\"en"', '"authorization":"Bearer [REDACTED]\\"en"'],
  ['escaped\\t+33 1 23 45 67 89', 'escaped\\t[REDACTED:phone]'],
];

const UNTOUCHED: readonly string[] = [
  'event 0190b7a2-7d3c-7c1e-9f00-3f2b1c0d4e5f',
  'uuid 12345678-1234-4234-8234-123456789012',
  'at 2026-11-22T12:00:01.123Z',
  'at 2026-11-22T12:00:01+01:00 on 2026-11-22',
  'date 22.11.2026 and 11/22/2026',
  'amount 1234.56 and 1,234,567.89 and -4111.11',
  'total +12345678.90',
  'epoch ms 1764681234567',
  'snowflake 1234567890123456789',
  'id 4111111111111112 fails Luhn',
  'count 5555 5555 5555 5555 5555',
  'row 42, bigint id 9007199254740991',
  'sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
  'md5 D41D8CD98F00B204E9800998ECF8427E',
  'ip 192.168.100.200 and ::ffff:127.0.0.1 and 2001:db8::1',
  'messageId msg-2026-11-22-000123',
  'postgres://postgres@127.0.0.1:5432/analytics',
  'version 1.2.3 and v10.20.30',
  'iban-like GB82WEST12345698765433',
  'iban-like XX82WEST12345698765432',
  'ssn-like 000-12-3456 and 666-12-3456',
  'unseparated 4155552671',
  'requestId 8b0e2c4c-1a3b-4f7e-9d2a-0c5e6f7a8b9c, pid 12345',
  'duration 0.25 ms, 0 12 34',
  'the bearer of news',
  'prefix agk_abc only',
  'handle @someone and a@b',
];

describe('personal data masking, case by case', () => {
  for (const [input, expected] of MASKED) {
    it(`masks ${JSON.stringify(input)}`, () => assert.equal(maskSecrets(input), expected));
  }
  for (const input of UNTOUCHED) {
    it(`leaves ${JSON.stringify(input)} alone`, () => assert.equal(maskSecrets(input), input));
  }

  it('keeps a serialized line valid JSON whatever it masks', () => {
    const value = {
      a: 'x\n\tjane@example.com',
      b: ['\n4111111111111111', 'Bearer abcdefgh"b'],
      c: 'GB82WEST12345698765432\n',
    };
    const masked = JSON.parse(maskSecrets(JSON.stringify(value))) as typeof value;
    assert.deepEqual(masked, {
      a: 'x\n\t[REDACTED:email]',
      b: ['\n[REDACTED:card]', 'Bearer [REDACTED]"b'],
      c: '[REDACTED:iban]\n',
    });
  });
});
