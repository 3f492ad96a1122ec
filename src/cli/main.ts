import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { ApiKeyService } from '../auth/api-key.service.js';
import { ConfigError, loadConfig } from '../config/config.js';
import { createPool } from '../db/pool.js';
import { prepareDatabase } from '../db/prepare-database.js';
import { GatewayError } from '../graphql/errors.js';
import { createLogger } from '../observability/logger.js';
import { closeRedis, createRedis, waitForReady } from '../redis/create-redis.js';

const USAGE = `Usage:
  npm run cli -- keys create --tenant <slug> --scopes <scope,scope> [--name <name>] [--max-cost <points>]
  npm run cli -- keys list --tenant <slug>
  npm run cli -- keys revoke <key id>

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
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [group, command, ...rest] = positionals;
  if (values.help || group !== 'keys' || !command) throw new UsageError();

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
