import { API_KEY_PATTERN } from '../auth/api-key.js';

const BEARER = /\b(Bearer\s+)[^\s"',;]+/gi;

/**
 * Replaces API keys and bearer tokens inside free text (log messages, error messages) with a
 * marker that keeps the key's public prefix, so an operator can still tell which key it was.
 * Structured fields that hold secrets are removed by path in the logger's `redact` list instead.
 */
export function maskSecrets(text: string): string {
  return text.replace(BEARER, '$1[REDACTED]').replace(API_KEY_PATTERN, (key) => `${key.slice(0, 12)}…[REDACTED]`);
}
