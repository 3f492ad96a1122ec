import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { ApiKeyService } from '../auth/api-key.service.js';
import { ConfigError, loadConfig } from '../config/config.js';
import { createPool } from '../db/pool.js';
import { prepareDatabase } from '../db/prepare-database.js';
import { GatewayError } from '../graphql/errors.js';
import { createLogger } from '../observability/logger.js';
import { closeRedis, createRedis, waitForReady } from '../redis/create-redis.js';
import { createQueryCache } from '../analytics/query-cache.js';
import { createRollupRebuilder, type RebuildProgress } from '../analytics/rollup-rebuild.service.js';
import { createAuditLogWriter } from '../audit/audit-log.writer.js';
import { ApiKeyRepository } from '../auth/api-key.repository.js';
import { createMetrics } from '../observability/metrics.js';
import { createUserErasureService } from '../privacy/user-erasure.service.js';
import { createStreamKeys } from '../redis/keys.js';

const USAGE = `Usage:
  npm run cli -- keys create --tenant <slug> --scopes <scope,scope> [--name <name>] [--max-cost <points>]
  npm run cli -- keys list --tenant <slug>
  npm run cli -- keys revoke <key id>
  npm run cli -- users erase --tenant <slug> --user <user id>
  npm run cli -- rollups rebuild --tenant <slug> --from <ISO time> --to <ISO time>

Scopes: events:write, analytics:read, admin. The tenant is created when new.
"keys create" prints the key alone on its last line; it is shown only this once.`;

class UsageError extends Error {}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      tenant: { type: 'string' },
      scopes: { type: 'string' },
      name: { type: 'string' },
      'max-cost': { type: 'string' },
      user: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [group, command, ...rest] = positionals;
  if (values.help || !command) throw new UsageError();
  if (group === 'users' || group === 'rollups') return runDataLifecycle(group, command, values, rest);
  if (group !== 'keys') throw new UsageError();

  const config = loadConfig(process.env);
  // Diagnostics go to stderr so stdout carries only the answer (scripts read the key off it).
  const logger = createLogger(
    { log: { level: config.log.level === 'info' ? 'warn' : config.log.level } },
    pino.destination(2),
  );
  await prepareDatabase(config, logger, { migrate: config.database.migrateOnStart });
  // Operator commands (a rollup rebuild over months) are not bounded like a request's statements.
  const pool = createPool({ database: { ...config.database, statementTimeoutMs: 0 } }, logger);
  const redis = createRedis(config, logger, { name: 'cli' });
  const service = new ApiKeyService(pool, redis, config.redis.keyPrefix, logger);
  try {
    switch (command) {
      case 'create': {
        if (!values.tenant || !values.scopes || rest.length) throw new UsageError();
        const { apiKey, plaintext } = await service.createKey({
          tenantSlug: values.tenant,
          name: values.name ?? 'cli',
          maxOperationCost: values['max-cost'] === undefined ? null : parseMaxCost(values['max-cost']),
          scopes: values.scopes
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean),
        });
        console.log(`tenant:  ${apiKey.tenantSlug}`);
        console.log(`key id:  ${apiKey.id}`);
        console.log(`name:    ${apiKey.name}`);
        console.log(`scopes:  ${apiKey.scopes.join(',')}`);
        if (apiKey.maxOperationCost !== null) console.log(`max cost per operation: ${apiKey.maxOperationCost}`);
        console.log('The key follows on the next line. Store it now: only its hash is kept.');
        console.log(plaintext);
        return 0;
      }
      case 'list': {
        if (!values.tenant || rest.length) throw new UsageError();
        const keys = await service.listKeys(values.tenant);
        console.log(['id', 'prefix', 'name', 'scopes', 'created', 'last used', 'revoked'].join('\t'));
        for (const k of keys) {
          const when = (d: Date | null) => (d ? d.toISOString() : '-');
          console.log(
            [k.id, k.prefix, k.name, k.scopes.join(','), when(k.createdAt), when(k.lastUsedAt), when(k.revokedAt)].join(
              '\t',
            ),
          );
        }
        return 0;
      }
      case 'revoke': {
        const [id] = rest;
        if (!id || rest.length > 1) throw new UsageError();
        // Give the broadcast a moment to connect; without it caches still expire the key in seconds.
        await waitForReady(redis, 2_000).catch(() => undefined);
        const revoked = await service.revokeKey(id, null);
        if (!revoked) {
          console.error(`no API key with id ${id}`);
          return 1;
        }
        console.log(
          `revoked ${revoked.id} (${revoked.prefix}…, tenant ${revoked.tenantSlug}) at ${revoked.revokedAt?.toISOString()}`,
        );
        return 0;
      }
      default:
        throw new UsageError();
    }
  } finally {
    await Promise.all([pool.end(), closeRedis(redis)]);
  }
}

/**
 * `users erase` and `rollups rebuild`: the same services the eraseUser and rebuildRollups
 * mutations call, with an audit row written as the CLI (no key).
 */
async function runDataLifecycle(
  group: 'users' | 'rollups',
  command: string,
  values: { tenant?: string; user?: string; from?: string; to?: string },
  rest: string[],
): Promise<number> {
  if (rest.length || !values.tenant) throw new UsageError();
  if (group === 'users' && (command !== 'erase' || !values.user)) throw new UsageError();
  if (group === 'rollups' && (command !== 'rebuild' || !values.from || !values.to)) throw new UsageError();
  const config = loadConfig(process.env);
  const logger = createLogger(
    { log: { level: config.log.level === 'info' ? 'warn' : config.log.level } },
    pino.destination(2),
  );
  await prepareDatabase(config, logger, { migrate: config.database.migrateOnStart });
  const pool = createPool(config, logger);
  const redis = createRedis(config, logger, { name: 'cli' });
  const metrics = createMetrics();
  const audit = createAuditLogWriter({ pool, logger, metrics }, config.audit);
  const queryCache = createQueryCache({ redis, keyPrefix: config.redis.keyPrefix, metrics, logger }, config.queryCache);
  const rollups = createRollupRebuilder({ pool, onTenantRefreshed: (id) => queryCache.invalidate(id) });
  try {
    const tenant = await new ApiKeyRepository(pool).findTenant(values.tenant);
    if (!tenant) {
      console.error(`no tenant with slug ${values.tenant}`);
      return 1;
    }
    const record = (action: string, details: Record<string, unknown>) =>
      audit.record({
        occurredAt: new Date(),
        tenantId: tenant.id,
        keyId: null,
        keyPrefix: null,
        action,
        operationName: 'cli',
        result: 'success',
        ip: null,
        userAgent: 'analytics-gateway cli',
        traceId: null,
        requestId: null,
        details,
      });
    await audit.start();
    if (group === 'users') {
      const keys = createStreamKeys(config.redis.keyPrefix, config.streams.partitions);
      const erasure = createUserErasureService({
        pool,
        redis,
        keys,
        rollups,
        invalidate: (id) => queryCache.invalidate(id),
        logger,
      });
      const result = await erasure.erase(tenant.id, values.user!);
      // The user id and the count only: the row must not keep what was erased.
      record('eraseUser', { userId: result.userId, eventsDeleted: result.eventsDeleted });
      console.log(`erased user ${result.userId} of tenant ${tenant.slug}: ${result.eventsDeleted} events deleted`);
      console.log(
        `stream entries deleted: ${result.streamEntriesDeleted}, dead letters deleted: ${result.deadLettersDeleted}`,
      );
      console.log(`completed at ${result.completedAt.toISOString()}`);
      return 0;
    }
    const from = parseTime(values.from!);
    const to = parseTime(values.to!);
    const progress = progressPrinter(process.stderr);
    const result = await rollups.rebuild(tenant.id, from, to, progress);
    record('rebuildRollups', { from: from.toISOString(), to: to.toISOString(), hours: result.hours });
    console.log(
      `rebuilt ${result.hours} hours of rollups for tenant ${tenant.slug}, completed at ${result.completedAt.toISOString()}`,
    );
    return 0;
  } finally {
    await audit.stop();
    await Promise.all([pool.end(), closeRedis(redis)]);
  }
}

function parseTime(value: string): Date {
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) throw new UsageError();
  return date;
}

/** A bar redrawn in place on a terminal; one line per step otherwise (logs, CI). */
function progressPrinter(out: NodeJS.WriteStream): (p: RebuildProgress) => void {
  const width = 30;
  return ({ hoursDone, hoursTotal }) => {
    const ratio = hoursTotal === 0 ? 1 : hoursDone / hoursTotal;
    const text = `${hoursDone}/${hoursTotal} hours (${Math.round(ratio * 100)}%)`;
    if (out.isTTY) {
      const filled = Math.round(ratio * width);
      out.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}${hoursDone >= hoursTotal ? '\n' : ''}`);
    } else {
      out.write(`rebuilding rollups: ${text}\n`);
    }
  };
}

/** Digits only: `Number('1e3')` or `'12abc'` slipping through would surprise an operator. */
function parseMaxCost(value: string): number {
  if (!/^\d{1,9}$/.test(value)) throw new UsageError();
  return Number(value);
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (err) {
  if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
    console.error(USAGE);
    process.exitCode = 2;
  } else if (err instanceof ConfigError || err instanceof GatewayError) {
    console.error(err.message);
    process.exitCode = 1;
  } else {
    console.error(err);
    process.exitCode = 1;
  }
}
