import { execFile } from 'node:child_process';
import { chmod, chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { POSTGRES_URL } from './test-env.js';

const run = promisify(execFile);

/** Where Debian's postgresql-15 puts the server binaries; PG_BIN overrides. */
const PG_BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';

export interface PgReplica {
  readonly port: number;
  /** `databaseUrl` with the replica's port: the same database, read from the replica. */
  urlOf(databaseUrl: string): string;
  /** pg_ctl stop -m immediate, then the data directory is removed. */
  stop(): Promise<void>;
}

/**
 * A streaming replica of the local cluster (POSTGRES_URL), made as operators make one:
 * pg_basebackup -R -X stream into a temporary directory owned by the postgres OS user, started by
 * pg_ctl on a free port, listening on 127.0.0.1 and a socket in that directory only. It follows
 * every database of the cluster, those created after it too. No replication slot: a test killed
 * before stop() leaves nothing on the primary that retains WAL.
 *
 * The cluster must accept replication connections from 127.0.0.1 (a `host replication` entry in
 * pg_hba.conf, which .ci/run adds); without one this fails and says so rather than skipping.
 */
export async function startReplica(): Promise<PgReplica> {
  const primary = new URL(POSTGRES_URL);
  const settings = await primarySettings();
  const dir = await mkdtemp(join(tmpdir(), 'agw-replica-'));
  const data = join(dir, 'data');
  const asPostgres = (file: string, args: string[]) =>
    process.getuid?.() === 0 ? run('runuser', ['-u', 'postgres', '--', file, ...args]) : run(file, args);
  let started = false;
  try {
    if (process.getuid?.() === 0) await chown(dir, Number(settings.uid), Number(settings.gid));
    await chmod(dir, 0o700);
    const port = await freePort();
    try {
      await asPostgres(join(PG_BIN, 'pg_basebackup'), [
        '-D',
        data,
        '-R',
        '-X',
        'stream',
        '-c',
        'fast',
        '-h',
        primary.hostname,
        '-p',
        primary.port || '5432',
        '-U',
        decodeURIComponent(primary.username) || 'postgres',
      ]);
    } catch (err) {
      const stderr = (err as { stderr?: string }).stderr ?? String(err);
      throw new Error(
        `pg_basebackup of ${primary.host} failed: ${stderr.trim()}\n` +
          'The read-replica tests need the local cluster to accept replication connections from 127.0.0.1: ' +
          'add "host replication postgres 127.0.0.1/32 trust" to its pg_hba.conf (SHOW hba_file) and reload, as .ci/run does.',
      );
    }
    // A Debian cluster keeps its configuration outside the data directory, so the copy has none.
    // A hot standby needs these at least as high as its primary's.
    const conf = [
      `listen_addresses = '127.0.0.1'`,
      `port = ${port}`,
      `unix_socket_directories = '${dir}'`,
      `hot_standby = on`,
      `shared_buffers = '32MB'`,
      `timezone = 'UTC'`,
      ...[
        'max_connections',
        'max_worker_processes',
        'max_wal_senders',
        'max_prepared_transactions',
        'max_locks_per_transaction',
      ].map((name) => `${name} = ${settings[name]}`),
    ];
    await writeFile(join(data, 'postgresql.conf'), conf.join('\n') + '\n');
    await writeFile(join(data, 'pg_hba.conf'), 'local all all trust\nhost all all 127.0.0.1/32 trust\n');
    await writeFile(join(data, 'pg_ident.conf'), '');
    if (process.getuid?.() === 0) {
      for (const f of ['postgresql.conf', 'pg_hba.conf', 'pg_ident.conf'])
        await chown(join(data, f), Number(settings.uid), Number(settings.gid));
    }
    started = true;
    await asPostgres(join(PG_BIN, 'pg_ctl'), ['-D', data, '-l', join(dir, 'server.log'), '-w', '-t', '60', 'start']);
    const replica: PgReplica = {
      port,
      urlOf(databaseUrl) {
        const url = new URL(databaseUrl);
        url.hostname = '127.0.0.1';
        url.port = String(port);
        return url.toString();
      },
      async stop() {
        await asPostgres(join(PG_BIN, 'pg_ctl'), ['-D', data, '-m', 'immediate', 'stop']).catch(() => undefined);
        await rm(dir, { recursive: true, force: true });
      },
    };
    await waitAccepting(replica.urlOf(POSTGRES_URL));
    return replica;
  } catch (err) {
    if (started)
      await asPostgres(join(PG_BIN, 'pg_ctl'), ['-D', data, '-m', 'immediate', 'stop']).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** The primary's settings a standby must match, and the uid/gid owning its data directory. */
async function primarySettings(): Promise<Record<string, string>> {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    const { rows } = await client.query<{ name: string; setting: string }>(
      `SELECT name, setting FROM pg_settings WHERE name = ANY ($1)`,
      [
        [
          'max_connections',
          'max_worker_processes',
          'max_wal_senders',
          'max_prepared_transactions',
          'max_locks_per_transaction',
          'data_directory',
        ],
      ],
    );
    const settings = Object.fromEntries(rows.map((r) => [r.name, r.setting]));
    const { stdout } = await run('stat', ['-c', '%u %g', settings.data_directory!]);
    const [uid, gid] = stdout.trim().split(' ');
    return { ...settings, uid: uid!, gid: gid! };
  } finally {
    await client.end();
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** pg_ctl -w returns once the server is up; a standby may still refuse until it is consistent. */
async function waitAccepting(url: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
    try {
      await client.connect();
      const { rows } = await client.query<{ standby: boolean }>('SELECT pg_is_in_recovery() AS standby');
      if (!rows[0]!.standby) throw new Error('the copy is not a standby');
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}
