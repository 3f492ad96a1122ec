import { createServer, type Server, type Socket, connect } from 'node:net';

export interface TcpProxy {
  readonly port: number;
  /** Drops every open connection and resets new ones, as if the service went away. */
  cut(): void;
  /** Forwards new connections again. */
  restore(): void;
  /**
   * Holds all traffic, both ways, on open and new connections, without closing any: the service
   * looks frozen (a stopped process, a stalled network) rather than gone.
   */
  pause(): void;
  /** Delivers what was held, in order, and forwards again. */
  resume(): void;
  close(): Promise<void>;
}

/**
 * A TCP proxy on 127.0.0.1 between the gateway and a real service, so a test can make Postgres
 * or Redis unreachable (or frozen) without touching the machine's services.
 */
export async function createTcpProxy(
  targetPort: number,
  targetHost = '127.0.0.1',
  /**
   * Sees every connection's client-to-service bytes, in order (to count what reaches the service),
   * before they are forwarded: a chunk it sees after calling pause() is held with the rest.
   */
  tap?: () => (chunk: Buffer) => void,
): Promise<TcpProxy> {
  const open = new Set<Socket>();
  /** Per paused direction, the chunks read but not yet written. */
  const held = new Map<Socket, Buffer[]>();
  const peerOf = new Map<Socket, Socket>();
  let isCut = false;
  let paused = false;

  // Each direction by hand rather than pipe(): pipe() resumes a source on the sink's 'drain',
  // which would undo a pause.
  const forward = (from: Socket, to: Socket) => {
    from.on('data', (chunk: Buffer) => {
      if (paused) {
        from.pause();
        held.set(from, [...(held.get(from) ?? []), chunk]);
        return;
      }
      if (!to.write(chunk)) from.pause();
    });
    to.on('drain', () => {
      if (!paused) from.resume();
    });
  };

  const server: Server = createServer((client) => {
    if (isCut) return void client.destroy();
    const upstream = connect(targetPort, targetHost);
    open.add(client).add(upstream);
    peerOf.set(client, upstream).set(upstream, client);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      for (const s of [client, upstream]) {
        open.delete(s);
        held.delete(s);
        peerOf.delete(s);
      }
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    if (tap) client.on('data', tap());
    forward(client, upstream);
    forward(upstream, client);
    if (paused) {
      client.pause();
      upstream.pause();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const cut = () => {
    isCut = true;
    for (const socket of open) socket.destroy();
    open.clear();
    held.clear();
  };
  return {
    port,
    cut,
    restore() {
      isCut = false;
    },
    pause() {
      paused = true;
      for (const socket of open) socket.pause();
    },
    resume() {
      paused = false;
      // Each socket's held chunks go to its peer before anything newer is read.
      for (const [from, chunks] of held) {
        const to = peerOf.get(from);
        if (to && !to.destroyed) for (const chunk of chunks) to.write(chunk);
      }
      held.clear();
      for (const socket of open) socket.resume();
    },
    async close() {
      cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
