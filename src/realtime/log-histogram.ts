/**
 * A mergeable log-scale histogram (the bucket scheme of DDSketch): a value v > 0 falls in bucket
 * i = ceil(log_γ(v)) with γ = (1 + α) / (1 − α), and every value of a bucket lies within α of the
 * bucket's representative 2γ^i / (γ + 1), relative to itself. Negative values use a mirrored set of
 * buckets, and values too small to tell from zero one zero bucket. Buckets are plain counters, so
 * histograms built anywhere (any replica, any stream partition) merge by adding counts, and
 * quantiles read from the merged counts are within α of the exact ones at the same rank.
 *
 * Bucket names are short strings ("p12", "n3", "z") because they are Redis hash fields.
 */
export const RELATIVE_ACCURACY = 0.005;
const GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY);
const LOG_GAMMA = Math.log(GAMMA);
/** Magnitudes below this count as zero (well below any measure a partner sends). */
const MIN_MAGNITUDE = 1e-9;

export function bucketOf(value: number): string {
  const magnitude = Math.abs(value);
  if (magnitude < MIN_MAGNITUDE) return 'z';
  const index = Math.ceil(Math.log(magnitude) / LOG_GAMMA);
  return `${value > 0 ? 'p' : 'n'}${index}`;
}

function representative(bucket: string): number {
  if (bucket === 'z') return 0;
  const value = (2 * GAMMA ** Number(bucket.slice(1))) / (GAMMA + 1);
  return bucket[0] === 'n' ? -value : value;
}

/**
 * Quantiles (0..1) of the counted values, interpolated between neighbouring ranks as Postgres's
 * percentile_cont is, so both read the same quantity. null when nothing was counted.
 */
export function quantiles(counts: ReadonlyMap<string, number>, qs: readonly number[]): (number | null)[] {
  const buckets = [...counts]
    .filter(([, n]) => n > 0)
    .map(([bucket, n]) => ({ value: representative(bucket), n }))
    .sort((a, b) => a.value - b.value);
  const total = buckets.reduce((sum, b) => sum + b.n, 0);
  if (total === 0) return qs.map(() => null);
  /** The value at 0-based rank r of the sorted values. */
  const at = (rank: number) => {
    let seen = 0;
    for (const b of buckets) {
      seen += b.n;
      if (rank < seen) return b.value;
    }
    return buckets.at(-1)!.value;
  };
  return qs.map((q) => {
    const h = q * (total - 1);
    const lo = Math.floor(h);
    const low = at(lo);
    return h === lo ? low : low + (h - lo) * (at(lo + 1) - low);
  });
}
