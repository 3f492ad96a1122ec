import { API_KEY_PATTERN } from '../auth/api-key.js';

/**
 * Where a match may start. Text is masked both raw and as serialized JSON (a whole log line, an
 * audit row's details), so a preceding JSON escape such as `\n` counts as a separator, and a match
 * never starts right after a backslash: replacing the `n` of `\n` would corrupt the line.
 */
const START = String.raw`(?:(?<![\w+\\-])|(?<=(?<!\\)\\[nrtbf]))`;
/** Where a number-like match must end: not inside a longer word or number (`1234.56`, `v1.2`). */
const END = String.raw`(?![\w@]|[.,:/-]\d)`;

/** A token is at least 8 characters, so prose ("the bearer of") is left alone. */
const BEARER = /(?:\b|(?<=\\[nrtbf]))(Bearer\s+)[^\s"'\\,;]{8,}/gi;

/** Local part and domain as mail systems write them; the domain needs a letter TLD (so no IPs). */
const EMAIL =
  /(?:(?<![\\\w.%+-])|(?<=(?<!\\)\\[nrtbf]))[\w.%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}(?![\w-])/g;

/**
 * Card numbers: 13–19 digits starting with a major network's first digit (2–6: Mastercard, Amex,
 * Diners, JCB, Visa, Discover, UnionPay), optionally grouped by single spaces or dashes, masked
 * only when the Luhn check passes. Epoch-millisecond times and snowflake ids start with 1.
 */
const CARD = new RegExp(`${START}[2-6](?:[ -]?\\d){12,18}${END}`, 'g');

/**
 * Phone numbers, only in the shapes people write them (a bare run of digits is an id, not a phone):
 * - international: `+`, a country code, 8–15 digits in all, grouped by spaces, dashes or
 *   parentheses (`+44 20 7946 0958`, `+1 (415) 555-2671`, `+4915123456789`);
 * - North American: `(415) 555-2671`, `415-555-2671`, `415.555.2671`, `415 555 2671`;
 * - European national with a trunk 0: `020 7946 0958`, `06 12 34 56 78`, `0151-2345-6789`
 *   (10–12 digits in 3–5 groups).
 */
const PHONE_INTERNATIONAL = new RegExp(
  `(?:(?<![\\w+\\\\])|(?<=(?<!\\\\)\\\\[nrtbf]))\\+[1-9](?:[ ()-]{0,2}\\d){7,14}${END}`,
  'g',
);
const PHONE_NANP = new RegExp(`${START}(?:\\([2-9]\\d{2}\\) ?|[2-9]\\d{2}[ .-])[2-9]\\d{2}[ .-]\\d{4}${END}`, 'g');
const PHONE_TRUNK = new RegExp(`${START}0\\d{1,4}(?:[ .-]\\d{2,4}){2,4}${END}`, 'g');

/**
 * National ids: US Social Security numbers written `123-45-6789` (area not 000, 666 or 9xx, group
 * not 00, serial not 0000), and UK National Insurance numbers `QQ 12 34 56 C` (HMRC's prefix
 * letters, with or without spaces, upper case).
 */
const US_SSN = new RegExp(`${START}(?!000|666|9\\d\\d)\\d{3}-(?!00)\\d{2}-(?!0000)\\d{4}${END}`, 'g');
const UK_NINO = new RegExp(
  `${START}(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\\d{2} ?\\d{2} ?\\d{2} ?[A-D](?!\\w)`,
  'g',
);

/** IBANs: a country's code and length from the SWIFT registry, verified by the ISO 7064 mod-97 check. */
const IBAN = new RegExp(`${START}[A-Z]{2}\\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?!\\w)`, 'g');
// prettier-ignore
const IBAN_LENGTH: Readonly<Record<string, number>> = {
  AD: 24, AE: 23, AL: 28, AT: 20, AZ: 28, BA: 20, BE: 16, BG: 22, BH: 22, BR: 29, BY: 28, CH: 21, CR: 22, CY: 28,
  CZ: 24, DE: 22, DK: 18, DO: 28, EE: 20, EG: 29, ES: 24, FI: 18, FO: 18, FR: 27, GB: 22, GE: 22, GI: 23, GL: 18,
  GR: 27, GT: 28, HR: 21, HU: 28, IE: 22, IL: 23, IQ: 23, IS: 26, IT: 27, JO: 30, KW: 30, KZ: 20, LB: 28, LC: 32,
  LI: 21, LT: 20, LU: 20, LV: 21, MC: 27, MD: 24, ME: 22, MK: 19, MR: 27, MT: 31, MU: 30, NL: 18, NO: 15, PK: 24,
  PL: 28, PS: 29, PT: 25, QA: 29, RO: 24, RS: 22, SA: 24, SC: 31, SE: 24, SI: 19, SK: 24, SM: 27, ST: 25, SV: 28,
  TL: 23, TN: 24, TR: 26, UA: 29, VA: 22, VG: 24, XK: 20,
};

/**
 * Cheap gates, one per pattern: plain scans without lookbehind, which V8 runs several times faster
 * than the exact patterns. A typical log line (timestamps, UUIDs, numbers) passes none of them.
 */
const GATE = {
  bearer: /bearer\s/i,
  iban: /[A-Z]{2}\d{2}/,
  nino: /[A-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]/,
  card: /\d(?:[ -]?\d){12}/,
  ssn: /\d{3}-\d{2}-\d{4}/,
  international: /\+\d/,
  nanp: /\d{3}[ .)-] ?\d{3}[ .-]\d{4}/,
  // With the character before the 0 as START allows it (the line's own ISO timestamp, `2026-12-04`,
  // would pass a gate without it, and the exact pattern is the most expensive of all).
  trunk: /(?:^|[^\w+\\-]|\\[nrtbf])0\d{1,4}[ .-]\d{2,4}[ .-]\d{2,4}/,
};

/**
 * Masks secrets and personal data in text: a log line (serialized JSON included), an error
 * message, an audit row's details. API keys keep their public 12-character prefix so an operator
 * can still tell which key it was; everything else is replaced by a marker naming its kind.
 * Structured fields that hold secrets are also removed by path in the logger's `redact` list.
 * It runs on every log line, so each pattern is tried only when its gate says it could match.
 */
export function maskSecrets(text: string): string {
  let out = text;
  if (GATE.bearer.test(out)) out = out.replace(BEARER, '$1[REDACTED]');
  if (out.includes('agk_')) out = out.replace(API_KEY_PATTERN, (key) => `${key.slice(0, 12)}…[REDACTED]`);
  if (out.includes('@')) out = out.replace(EMAIL, '[REDACTED:email]');
  if (GATE.iban.test(out)) out = out.replace(IBAN, (m) => (isIban(m) ? '[REDACTED:iban]' : m));
  if (GATE.nino.test(out)) out = out.replace(UK_NINO, '[REDACTED:national-id]');
  if (GATE.card.test(out)) out = out.replace(CARD, (m) => (luhn(m) ? '[REDACTED:card]' : m));
  if (GATE.ssn.test(out)) out = out.replace(US_SSN, '[REDACTED:national-id]');
  if (GATE.international.test(out)) out = out.replace(PHONE_INTERNATIONAL, '[REDACTED:phone]');
  if (GATE.nanp.test(out)) out = out.replace(PHONE_NANP, '[REDACTED:phone]');
  if (GATE.trunk.test(out)) {
    out = out.replace(PHONE_TRUNK, (m) => (digitCount(m) >= 10 && digitCount(m) <= 12 ? '[REDACTED:phone]' : m));
  }
  return out;
}

function digitCount(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57) n++;
  return n;
}

/** The Luhn check over the digits of `s` (separators skipped). */
function luhn(s: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = s.length - 1; i >= 0; i--) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) continue;
    let d = c;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

/** A registered country's length, then ISO 7064 mod 97-10: the first four characters moved to the end, letters as 10..35. */
function isIban(candidate: string): boolean {
  const iban = candidate.replace(/ /g, '');
  if (IBAN_LENGTH[iban.slice(0, 2)] !== iban.length) return false;
  const rearranged = iban.slice(4) + iban.slice(0, 4);
  let remainder = 0;
  for (let i = 0; i < rearranged.length; i++) {
    const c = rearranged.charCodeAt(i);
    const value = c >= 65 ? c - 55 : c - 48;
    remainder = value >= 10 ? (remainder * 100 + value) % 97 : (remainder * 10 + value) % 97;
  }
  return remainder === 1;
}
