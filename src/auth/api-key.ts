import { createHash, randomBytes } from 'node:crypto';

/** Every generated key starts with this, so scanners and our own log masking can spot one. */
export const API_KEY_MARKER = 'agk_';
/** Matches generated keys inside free text (used to mask them in logs). */
export const API_KEY_PATTERN = /agk_[A-Za-z0-9_-]{16,}/g;
/** How much of a key is stored in clear: enough to find its row and name it, not to use it. */
export const API_KEY_PREFIX_LENGTH = 12;

/** 32 random bytes (256 bits), base64url: the key is unguessable, and its hash is safe to index. */
export function generateApiKey(): string {
  return API_KEY_MARKER + randomBytes(32).toString('base64url');
}

export function hashApiKey(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

export function apiKeyPrefix(key: string): string {
  return key.slice(0, API_KEY_PREFIX_LENGTH);
}
