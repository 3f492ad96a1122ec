import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { after, describe, it } from 'node:test';
import { ViewerDocument } from '../generated/graphql.js';
import { MAIN_JS, spawnGateway } from '../helpers/gateway.js';
import { errorCode, gql } from '../helpers/graphql-client.js';
import { isolatedEnv } from '../helpers/test-env.js';

/** Runs main.js to completion and returns its exit code and output. */
function runMain(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN_JS], {
      env: { PATH: process.env.PATH, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.on('exit', (code) => resolve({ code, output }));
  });
}

describe('the gateway process', () => {
  const isolation = isolatedEnv('process');
  after(() => isolation.cleanup());

  it('refuses to start on a bad config value, naming the variable and not echoing the value', async () => {
    const { code, output } = await runMain({ PORT: 'eighty', DATABASE_URL: 'mysql://root:hunter2@db/x' });
    assert.equal(code, 1);
    assert.match(output, /PORT/);
    assert.match(output, /DATABASE_URL/);
    assert.doesNotMatch(output, /hunter2|eighty/);
  });

  it('starts with BOOTSTRAP_API_KEY, answers the viewer, refuses another key, is ready, and exits 0 on SIGTERM within 10 s', async () => {
    const bootstrap = 'agk_bootstrap-e2e-key-0123456789abcdefghijklmnopq';
    const gateway = await spawnGateway(isolation.env({ BOOTSTRAP_API_KEY: bootstrap }));
    try {
      const viewer = await gql(gateway.url, ViewerDocument, { key: bootstrap });
      assert.deepEqual(viewer.data?.viewer, { tenant: 'demo', keyName: 'bootstrap', scopes: ['admin'] });
      assert.equal(errorCode(await gql(gateway.url, ViewerDocument, { key: 'some-other-key' })), 'UNAUTHENTICATED');
      assert.equal((await fetch(`${gateway.url}/ready`)).status, 200);
      assert.equal((await fetch(`${gateway.url}/health`)).status, 200);
    } finally {
      const started = Date.now();
      gateway.child.kill('SIGTERM');
      const { code } = await gateway.exited;
      assert.equal(code, 0);
      assert.ok(Date.now() - started < 10_000, `exited after ${Date.now() - started} ms`);
    }
    // Structured JSON logs with a request id, and the key nowhere in them.
    const lines = gateway
      .output()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(lines.some((l) => l.msg === 'request completed' && typeof (l.req as { id?: string })?.id === 'string'));
    assert.ok(lines.some((l) => l.msg === 'shutdown complete'));
    assert.ok(!gateway.output().includes(bootstrap.slice(12)), 'the key never reaches the logs');
  });

  it('finishes an in-flight request after SIGTERM, refuses new connections, then exits 0', async () => {
    const gateway = await spawnGateway(isolation.env({ BOOTSTRAP_API_KEY: 'inflight-key' }));
    const { port } = new URL(gateway.url);
    const body = JSON.stringify({ query: '{ viewer { tenant } }' });

    // Headers and half the body now; the rest after the signal, so the request is in flight.
    const response = new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: '/graphql',
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
            authorization: 'Bearer inflight-key',
          },
        },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on('error', reject);
      req.write(body.slice(0, 10));
      setTimeout(() => {
        gateway.child.kill('SIGTERM');
        setTimeout(async () => {
          // The listener is closed by now: a new client is refused while the old request proceeds.
          await assert.rejects(fetch(`${gateway.url}/health`));
          req.end(body.slice(10));
        }, 500);
      }, 200);
    });

    const { status, text } = await response;
    assert.equal(status, 200);
    // extensions.cost rides along (the cost plugin); the data is what this test is about.
    assert.deepEqual((JSON.parse(text) as { data: unknown }).data, { viewer: { tenant: 'demo' } });
    const { code } = await gateway.exited;
    assert.equal(code, 0);
  });

  it('exits 0 on SIGINT too', async () => {
    const gateway = await spawnGateway(isolation.env());
    gateway.child.kill('SIGINT');
    assert.equal((await gateway.exited).code, 0);
  });
});
