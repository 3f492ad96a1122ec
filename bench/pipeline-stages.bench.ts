import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { pino } from 'pino';
import { v7 as uuidv7 } from 'uuid';
import { loadConfig } from '../src/config/config.js';
import { prepareDatabase } from '../src/db/prepare-database.js';
import { EventRepository } from '../src/ingest/event.repository.js';
import type { StreamEvent } from '../src/ingest/stream-event.js';
import { createWindowStore, type AggregateEntry } from '../src/realtime/window-store.js';
import { createStreamKeys } from '../src/redis/keys.js';
import { ensureGroup, type StreamEntry } from '../src/streams/stream-entries.js';
import { isolatedEnv, REDIS_URL } from '../test/helpers/test-env.js';

/**
 * bench:stages — the two stages behind the stream, each alone, in one run:
 * - persist: 1000-event batches through EventRepository by COPY (`insertCountByCopy`, PERSIST_MODE=copy)
 *   and by unnest (`insertCount`, PERSIST_MODE=unnest), alternating, on one connection: rows/s and
 *   CPU per event of this process and of its Postgres backend (/proc, same machine);
 * - aggregate: the window store applying 1000-event batches (one script per batch, src/realtime/window-store.ts)
 *   against the same script run once per event: wall time per event, and Redis CPU from INFO cpu,
 *   which counts the whole server (exact only on a Redis nothing else uses: TEST_REDIS_URL).
 * `--quick`: a few seconds in all.
 */
const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    batches: { type: 'string' },
  },
});
const batches = Number(values.batches ?? (values.quick ? 12 : 60));
const TYPES = ['page_view', 'screen_view', 'click', 'search', 'signup', 'login', 'add_to_cart', 'purchase', 'error'];
const TENANT = '6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f';

function event(now: number): StreamEvent {
  const user = Math.floor(Math.random() * 50_000);
  const type = TYPES[Math.floor(Math.random() * TYPES.length)]!;
  return {
    tenantId: TENANT,
    id: uuidv7(),
    type,
    userId: `user-${user}`,
    sessionId: `sess-${user}-${Math.floor(now / 1_800_000)}`,
    messageId: `${uuidv7()}`,
    occurredAt: now - Math.floor(Math.random() * 5_000),
    receivedAt: now,
    value: type === 'purchase' ? Math.round(Math.random() * 20_000) / 100 : 1,
    properties: JSON.stringify({ path: '/pricing', country: 'DE', device: 'mobile', plan: 'pro' }),
  };
}
const batchOf = (n: number) => Array.from({ length: n }, () => event(Date.now()));

/** CPU (user + system) of a process of this machine, in µs, from /proc (Linux USER_HZ = 100). */
function processCpuUs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}
const ownCpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
const us = (n: number) => `${n.toFixed(1)} µs`;

async function persistStage(): Promise<void> {
  const isolation = isolatedEnv('bench_stages');
  const config = loadConfig(isolation.env());
  await prepareDatabase(config, pino({ level: 'silent' }), { migrate: true });
  // One connection: its backend's CPU is the Postgres side of every batch.
  const pool = new pg.Pool({ connectionString: isolation.databaseUrl, max: 1 });
  try {
    const backend = (await pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    const repository = new EventRepository(pool);
    const modes = {
      copy: (events: StreamEvent[]) => repository.insertCountByCopy(events),
      unnest: (events: StreamEvent[]) => repository.insertCount(events),
    };
    const totals = { copy: { ms: 0, node: 0, pg: 0, rows: 0 }, unnest: { ms: 0, node: 0, pg: 0, rows: 0 } };
    for (const write of Object.values(modes)) for (let i = 0; i < 2; i++) await write(batchOf(1000)); // warm-up
    for (let i = 0; i < batches; i++) {
      // Alternating, so both modes see the same table sizes and the same machine load.
      for (const [mode, write] of Object.entries(modes) as [
        keyof typeof modes,
        (e: StreamEvent[]) => Promise<number>,
      ][]) {
        const events = batchOf(1000);
        const [node0, pg0, t0] = [ownCpuUs(), processCpuUs(backend), performance.now()];
        const stored = await write(events);
        const t = totals[mode];
        t.ms += performance.now() - t0;
        t.node += ownCpuUs() - node0;
        t.pg += processCpuUs(backend) - pg0;
        t.rows += stored;
      }
    }
    console.log(`persist: ${batches} batches of 1000 events per mode, one connection, alternating`);
    for (const [mode, t] of Object.entries(totals)) {
      console.log(
        `  ${mode.padEnd(6)} ${Math.round(t.rows / (t.ms / 1000)).toLocaleString('en-US')} rows/s` +
          `  ${(t.ms / batches).toFixed(1)} ms per batch  Node ${us(t.node / t.rows)}/event  Postgres backend ${us(t.pg / t.rows)}/event`,
      );
    }
  } finally {
    await pool.end();
    await isolation.cleanup();
  }
}

async function redisCpuUs(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const read = (name: string) => Number(new RegExp(`${name}:([0-9.]+)`).exec(info)![1]);
  return (read('used_cpu_user') + read('used_cpu_sys')) * 1e6;
}

async function aggregateStage(): Promise<void> {
  const prefix = `agw-bench-stages:${process.pid}:`;
  const redis = new Redis(REDIS_URL);
  const keys = createStreamKeys(prefix, 1);
  const store = createWindowStore(redis, keys, { graceMs: 30_000 });
  const stream = keys.stream(0);
  await ensureGroup(redis, stream, 'aggregate');
  /** Appends `n` events' entries and reads them as the aggregate group would. */
  async function delivered(n: number): Promise<AggregateEntry[]> {
    const events = batchOf(n);
    const pipeline = redis.pipeline();
    for (let i = 0; i < n; i++) pipeline.xadd(stream, '*', 'e', '-');
    await pipeline.exec();
    const reply = (await redis.xreadgroup('GROUP', 'aggregate', 'bench', 'COUNT', n, 'STREAMS', stream, '>')) as [
      string,
      StreamEntry[],
    ][];
    return reply[0]![1].map(([entryId], i) => ({ entryId, event: events[i]! }));
  }
  async function measure(label: string, rounds: number, size: number, perEvent: boolean): Promise<void> {
    let ms = 0;
    let redisUs = 0;
    let node = 0;
    for (let r = 0; r < rounds; r++) {
      const entries = await delivered(size);
      const [r0, n0, t0] = [await redisCpuUs(redis), ownCpuUs(), performance.now()];
      if (perEvent) for (const entry of entries) await store.apply(0, 'aggregate', 'bench', [entry]);
      else await store.apply(0, 'aggregate', 'bench', entries);
      ms += performance.now() - t0;
      node += ownCpuUs() - n0;
      redisUs += (await redisCpuUs(redis)) - r0;
    }
    const events = rounds * size;
    console.log(
      `  ${label.padEnd(24)} ${us((ms * 1000) / events)}/event wall  Redis ${us(redisUs / events)}/event` +
        `  Node ${us(node / events)}/event  (${events} events)`,
    );
  }
  try {
    console.log(`aggregate: ${TYPES.length} types, 50k users, 3 window lengths; Redis ${REDIS_URL}`);
    await measure('per batch of 1000', batches, 1000, false);
    await measure('per event (batch of 1)', Math.max(1, Math.floor(batches / 6)), 1000, true);
    console.log('  (Redis CPU is the whole server’s: exact only when nothing else uses it)');
  } finally {
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (found.length) await redis.del(...found);
    } while (cursor !== '0');
    redis.disconnect();
  }
}

console.log(`bench:stages${values.quick ? ' --quick' : ''} (numbers from a shared machine vary ±20% between runs)\n`);
await persistStage();
console.log('');
await aggregateStage();
