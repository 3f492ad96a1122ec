import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { ApiKeyRepository } from '../auth/api-key.repository.js';
import { ConfigError, loadConfig } from '../config/config.js';
import { createPool } from '../db/pool.js';
import { prepareDatabase } from '../db/prepare-database.js';
import { createLogger } from '../observability/logger.js';
import { refreshSeededRollups, seedEvents } from './seed-events.js';

const USAGE = `Usage:
  npm run seed -- --events <count> [--tenant <slug>] [--days <days>] [--seed <n>]
                  [--concurrency <n>] [--format binary|text] [--strategy attach|direct] [--no-refresh]

  --events       events to generate: 10000000, 10_000_000, 10m, 500k
  --tenant       tenant slug, created when new (default demo)
  --days         days of history ending now (default 90)
  --seed         PRNG seed: the same seed and counts give the same events (default 1)
  --concurrency  days loaded in parallel, one connection each (default 2)
  --format       COPY format (default binary)
  --strategy     attach: a day without a partition is loaded into a new table, indexed, then
                 attached (default); direct: partitions first, rows COPYed into them
  --no-refresh   skip folding the events into the rollups

Loads the events with COPY into the daily partitions of DATABASE_URL (created and migrated when
missing), then refreshes the rollups. Progress goes to stderr, the summary to stdout.`;

class UsageError extends Error {}

const SLUG = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** 10000000, 10_000_000, 10,000,000, 10m, 1.5m, 500k, 1b. */
function parseCount(text: string): number | undefined {
  const match = /^(\d[\d_,]*(?:\.\d+)?)([kmb]?)$/i.exec(text.trim());
  if (!match) return undefined;
  const scale = { '': 1, k: 1e3, m: 1e6, b: 1e9 }[match[2]!.toLowerCase()]!;
  const count = Math.round(Number(match[1]!.replace(/[_,]/g, '')) * scale);
  return Number.isSafeInteger(count) && count > 0 ? count : undefined;
}

function parseIntOption(name: string, text: string | undefined, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new UsageError(`--${name} must be a whole number from ${min} to ${max}`);
  }
  return value;
}

function oneOf<T extends string>(name: string, text: string, allowed: readonly T[]): T {
  const value = allowed.find((a) => a === text);
  if (value === undefined) throw new UsageError(`--${name} must be one of ${allowed.join(', ')}`);
  return value;
}

function parse(argv: string[]) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      events: { type: 'string' },
      tenant: { type: 'string', default: 'demo' },
      days: { type: 'string' },
      seed: { type: 'string' },
      concurrency: { type: 'string' },
      format: { type: 'string', default: 'binary' },
      strategy: { type: 'string', default: 'attach' },
      'no-refresh': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || positionals.length) throw new UsageError();
  if (values.events === undefined) throw new UsageError('--events is required');
  const events = parseCount(values.events);
  if (events === undefined) throw new UsageError(`--events: not a count: ${values.events}`);
  if (!SLUG.test(values.tenant)) throw new UsageError('--tenant must match [a-z0-9][a-z0-9-]{0,62}');
  const format = oneOf('format', values.format, ['binary', 'text'] as const);
  const strategy = oneOf('strategy', values.strategy, ['attach', 'direct'] as const);
  return {
    events,
    tenant: values.tenant,
    days: parseIntOption('days', values.days, 90, 1, 3_650),
    seed: parseIntOption('seed', values.seed, 1, 0, 2 ** 32 - 1),
    concurrency: parseIntOption('concurrency', values.concurrency, 2, 1, 32),
    format,
    strategy,
    refresh: !values['no-refresh'],
  };
}

const count = new Intl.NumberFormat('en-US');

/**
 * A single line redrawn in place on a terminal; on a pipe or file (CI logs) a plain line at each
 * tenth instead, so the log stays readable.
 */
function progressBar(stream: NodeJS.WriteStream) {
  const started = performance.now();
  const tty = stream.isTTY === true;
  let lastDraw = 0;
  let lastTenth = 0;
  const line = (done: number, total: number) => {
    const seconds = (performance.now() - started) / 1000;
    const rate = seconds > 0 ? done / seconds : 0;
    const eta = rate > 0 ? Math.ceil((total - done) / rate) : undefined;
    const percent = total > 0 ? (100 * done) / total : 100;
    const width = 24;
    const filled = Math.round((width * percent) / 100);
    const bar = tty ? `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ` : '';
    return (
      `${bar}${percent.toFixed(1).padStart(5)}%  ${count.format(done)}/${count.format(total)} rows  ` +
      `${count.format(Math.round(rate))} rows/s  ETA ${eta === undefined ? '?' : `${eta}s`}`
    );
  };
  return {
    update(done: number, total: number): void {
      if (tty) {
        const now = performance.now();
        if (now - lastDraw < 100 && done < total) return;
        lastDraw = now;
        stream.write(`\r${line(done, total)}\x1b[K`);
      } else {
        const tenth = Math.floor((10 * done) / Math.max(1, total));
        if (tenth <= lastTenth) return;
        lastTenth = tenth;
        stream.write(`${line(done, total)}\n`);
      }
    },
    end(): void {
      if (tty) stream.write('\n');
    },
  };
}

async function main(argv: string[]): Promise<number> {
  const args = parse(argv);
  const config = loadConfig(process.env);
  // stdout carries the summary only; logs and progress go to stderr.
  const logger = createLogger(
    { log: { level: config.log.level === 'info' ? 'warn' : config.log.level } },
    pino.destination(2),
  );
  await prepareDatabase(config, logger, { migrate: config.database.migrateOnStart });
  // One connection per day in flight, one for the rest.
  const pool = createPool(
    // A day's bulk load may take longer than a request's statement is allowed (DB_STATEMENT_TIMEOUT_MS).
    {
      database: {
        ...config.database,
        poolMax: Math.max(config.database.poolMax, args.concurrency + 1),
        statementTimeoutMs: 0,
      },
    },
    logger,
  );
  try {
    const tenant = await new ApiKeyRepository(pool).upsertTenant(args.tenant);
    process.stderr.write(
      `seeding ${count.format(args.events)} events over ${args.days} days for tenant ${tenant.slug} (${tenant.id})\n`,
    );
    const progress = progressBar(process.stderr);
    const loaded = await seedEvents({
      pool,
      tenantId: tenant.id,
      events: args.events,
      days: args.days,
      seed: args.seed,
      concurrency: args.concurrency,
      format: args.format,
      strategy: args.strategy,
      onProgress: (done, total) => progress.update(done, total),
    }).finally(() => progress.end());
    console.log(`tenant:      ${tenant.slug} (${tenant.id})`);
    console.log(`window:      ${loaded.from.toISOString()} .. ${loaded.to.toISOString()}`);
    console.log(
      `copy:        ${count.format(loaded.rows)} rows in ${loaded.seconds.toFixed(1)} s = ` +
        `${count.format(Math.round(loaded.rowsPerSecond))} rows/s (concurrency ${args.concurrency}, ` +
        `${args.format}, ${loaded.attachedDays} days into new partitions, ${loaded.directDays} into existing ones)`,
    );
    if (args.refresh) {
      process.stderr.write('refreshing rollups...\n');
      const refreshed = await refreshSeededRollups(pool, logger, tenant.id, loaded.from, loaded.to);
      console.log(`rollups:     ${count.format(refreshed.hours)} hours refreshed in ${refreshed.seconds.toFixed(1)} s`);
    } else {
      console.log('rollups:     not refreshed (--no-refresh): they do not count these events');
    }
    return 0;
  } finally {
    await pool.end();
  }
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (err) {
  if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
    if ((err as Error).message) console.error((err as Error).message);
    console.error(USAGE);
    process.exitCode = 2;
  } else if (err instanceof ConfigError) {
    console.error(err.message);
    process.exitCode = 1;
  } else {
    console.error(err);
    process.exitCode = 1;
  }
}
