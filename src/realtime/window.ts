/** The live windows of metricUpdated, by length: tumbling, aligned to the epoch (UTC). */
export const WINDOW_MS = {
  ONE_MINUTE: 60_000,
  FIVE_MINUTES: 300_000,
  ONE_HOUR: 3_600_000,
} as const;
export type WindowName = keyof typeof WINDOW_MS;
export const WINDOW_NAMES = Object.keys(WINDOW_MS) as WindowName[];

export function windowStart(window: WindowName, at: number): number {
  return Math.floor(at / WINDOW_MS[window]) * WINDOW_MS[window];
}
