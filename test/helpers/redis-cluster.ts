import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Cluster, Redis } from 'ioredis';

const run = promisify(execFile);

export interface LocalRedisCluster {
  /** The masters' ports, in the order `redis-cli --cluster create` was given them. */
  readonly ports: readonly number[];
  /** `127.0.0.1:P1,127.0.0.1:P2,…`: the value of REDIS_CLUSTER_NODES. */
  readonly nodes: string;
  /** A client of the test's own (closed by `stop`). */
  client(): Cluster;
  /** Which master (its port) serves the slot of `key`, as the cluster says (CLUSTER KEYSLOT, CLUSTER SLOTS). */
  masterOf(key: string): Promise<number>;
  /** The keys matching `pattern` on one master, or on every master (SCAN runs per node on a Cluster). */
  keys(pattern: string, port?: number): Promise<string[]>;
  /** Ends the servers by pid and removes their directory. */
  stop(): Promise<void>;
}

/**
 * A Redis Cluster of `masters` masters and no replicas on free ports of 127.0.0.1, as an operator
 * makes one: `redis-server --cluster-enabled yes` per node in a temporary directory (no RDB, no
 * AOF), then `redis-cli --cluster create`; resolves once every node reports `cluster_state:ok`.
 * Each node also needs its bus port (port + 10000) free, which the ports are chosen for.
 */
export async function startRedisCluster(masters = 3): Promise<LocalRedisCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'agw-redis-cluster-'));
  const servers: ChildProcess[] = [];
  const clients: Array<Redis | Cluster> = [];
  // A test process that ends without calling stop (a crash, a timeout) takes its servers along.
  const killAll = () => {
    for (const child of servers) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.once('exit', killAll);
  const stop = async () => {
    process.off('exit', killAll);
    for (const c of clients) c.disconnect();
    await Promise.all(
      servers.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', () => resolve());
            process.kill(child.pid!, 'SIGTERM');
          }),
      ),
    );
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const ports: number[] = [];
    while (ports.length < masters) {
      const port = await freeClusterPort(ports);
      const output: string[] = [];
      const child = spawn(
        'redis-server',
        [
          '--port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          join(dir, `nodes-${port}.conf`),
          '--cluster-node-timeout',
          '5000',
          '--save',
          '',
          '--appendonly',
          'no',
          '--dir',
          dir,
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      child.stdout!.on('data', (chunk: Buffer) => output.push(chunk.toString()));
      child.stderr!.on('data', (chunk: Buffer) => output.push(chunk.toString()));
      servers.push(child);
      ports.push(port);
      await untilPing(port, child, output);
    }
    const nodes = ports.map((p) => `127.0.0.1:${p}`);
    await run('redis-cli', ['--cluster', 'create', ...nodes, '--cluster-replicas', '0', '--cluster-yes']);
    await untilClusterOk(ports);

    const node = (port: number) => {
      const client = new Redis({ host: '127.0.0.1', port, lazyConnect: false });
      clients.push(client);
      return client;
    };
    const admin = node(ports[0]!);
    return {
      ports,
      nodes: nodes.join(','),
      client() {
        const client = new Cluster(
          ports.map((port) => ({ host: '127.0.0.1', port })),
          {},
        );
        clients.push(client);
        return client;
      },
      async masterOf(key: string) {
        const slot = (await admin.cluster('KEYSLOT', key)) as number;
        const range = (await admin.cluster('SLOTS')).find(([from, to]) => slot >= from && slot <= to);
        // The first node of a range is its master.
        if (!range?.[2]) throw new Error(`no master serves slot ${slot}`);
        return range[2][1];
      },
      async keys(pattern: string, only?: number) {
        const found: string[] = [];
        for (const port of only === undefined ? ports : [only]) {
          const client = node(port);
          let cursor = '0';
          do {
            const [next, page] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
            found.push(...page);
            cursor = next;
          } while (cursor !== '0');
        }
        return found;
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** A free port of 127.0.0.1 whose cluster bus port (+10000) is free too, not among `taken`. */
async function freeClusterPort(taken: readonly number[]): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    if (taken.some((p) => Math.abs(p - port) < 2)) continue;
    if ((await isFree(port)) && (await isFree(port + 10_000))) return port;
  }
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

async function untilPing(port: number, child: ChildProcess, output: string[]): Promise<void> {
  const started = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server on ${port} exited: ${output.join('')}`);
    const ok = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), 'ping']).then(
      ({ stdout }) => stdout.trim() === 'PONG',
      () => false,
    );
    if (ok) return;
    if (Date.now() - started > 10_000) throw new Error(`redis-server on ${port} did not answer: ${output.join('')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Every node agrees: all slots served, state ok, every master known. */
async function untilClusterOk(ports: readonly number[]): Promise<void> {
  const started = Date.now();
  for (;;) {
    const infos = await Promise.all(
      ports.map((port) =>
        run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), 'cluster', 'info']).then(
          ({ stdout }) => stdout,
          () => '',
        ),
      ),
    );
    const ok = infos.every(
      (info) =>
        /cluster_state:ok/.test(info) &&
        /cluster_slots_ok:16384/.test(info) &&
        new RegExp(`cluster_known_nodes:${ports.length}\\b`).test(info),
    );
    if (ok) return;
    if (Date.now() - started > 20_000) throw new Error(`cluster not ok within 20 s:\n${infos.join('\n')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
