import { createTcpProxy, type TcpProxy } from './tcp-proxy.js';

export interface PgStatementCounter extends TcpProxy {
  /** Statements that reached Postgres through this proxy since the last reset. */
  count(): number;
  reset(): void;
}

/**
 * A TCP proxy in front of Postgres that counts the statements clients send, read from the wire
 * protocol: each simple Query ('Q') and each extended-protocol Execute ('E') is one statement (a
 * named statement is parsed once per connection, then only bound and executed). The count is what
 * reached the server, whatever the client library or the gateway believe they sent.
 */
export async function createPgStatementCounter(port = 5432): Promise<PgStatementCounter> {
  let statements = 0;
  const proxy = await createTcpProxy(port, '127.0.0.1', () => {
    let pending = Buffer.alloc(0);
    let started = false;
    return (chunk) => {
      pending = Buffer.concat([pending, chunk]);
      for (;;) {
        if (!started) {
          // The startup message has no type byte: int32 length, then the protocol version.
          if (pending.length < 4) return;
          const length = pending.readInt32BE(0);
          if (pending.length < length) return;
          pending = pending.subarray(length);
          started = true;
          continue;
        }
        if (pending.length < 5) return;
        const length = pending.readInt32BE(1);
        if (pending.length < 1 + length) return;
        const type = String.fromCharCode(pending[0]!);
        if (type === 'Q' || type === 'E') statements++;
        pending = pending.subarray(1 + length);
      }
    };
  });
  return { ...proxy, count: () => statements, reset: () => void (statements = 0) };
}
