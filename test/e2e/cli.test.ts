import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { ViewerDocument } from '../generated/graphql.js';
import { CLI_JS, startGateway, type RunningGateway } from '../helpers/gateway.js';
import { errorCode, gql } from '../helpers/graphql-client.js';
import { isolatedEnv, waitFor } from '../helpers/test-env.js';

describe('npm run cli -- keys …', () => {
  const isolation = isolatedEnv('cli');
  let gateway: RunningGateway;

  function cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [CLI_JS, ...args], {
        env: { PATH: process.env.PATH, ...isolation.env() } as NodeJS.ProcessEnv,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.on('exit', (code) => resolve({ code, stdout, stderr }));
    });
  }

  before(async () => {
    gateway = await startGateway(isolation.env());
  });
  after(async () => {
    await gateway?.stop();
    await isolation.cleanup();
  });

  it('creates a tenant and a key, prints the key alone on its last line, lists it, and revokes it everywhere', async () => {
    const created = await cli(
      'keys',
      'create',
      '--tenant',
      'acme',
      '--scopes',
      'analytics:read,events:write',
      '--name',
      'web',
    );
    assert.equal(created.code, 0, created.stderr);
    const lines = created.stdout.trim().split('\n');
    const key = lines.at(-1)!;
    assert.match(key, /^agk_[A-Za-z0-9_-]{43}$/);
    const id = /key id:\s+(\S+)/.exec(created.stdout)?.[1];
    assert.ok(id);

    const viewer = await gql(gateway.url, ViewerDocument, { key });
    assert.deepEqual(viewer.data?.viewer, {
      tenant: 'acme',
      keyName: 'web',
      scopes: ['analytics:read', 'events:write'],
    });

    const listed = await cli('keys', 'list', '--tenant', 'acme');
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, new RegExp(`${id}\\t${key.slice(0, 12)}\\tweb\\tanalytics:read,events:write`));
    assert.ok(!listed.stdout.includes(key.slice(12)), 'the key is never shown again');

    const revoked = await cli('keys', 'revoke', id);
    assert.equal(revoked.code, 0, revoked.stderr);
    await waitFor(async () => errorCode(await gql(gateway.url, ViewerDocument, { key })) === 'UNAUTHENTICATED', 5_000);
  });

  it('explains its usage with exit code 2, and bad input with exit code 1', async () => {
    const usage = await cli('keys', 'create', '--tenant', 'acme');
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /Usage:/);
    const unknown = await cli('frobnicate');
    assert.equal(unknown.code, 2);
    const badScope = await cli('keys', 'create', '--tenant', 'acme', '--scopes', 'root');
    assert.equal(badScope.code, 1);
    assert.match(badScope.stderr, /scopes must be/);
    const badTenant = await cli('keys', 'create', '--tenant', 'Not A Slug!', '--scopes', 'admin');
    assert.equal(badTenant.code, 1);
    const missing = await cli('keys', 'revoke', '00000000-0000-4000-8000-000000000000');
    assert.equal(missing.code, 1);
    const badMaxCost = await cli('keys', 'create', '--tenant', 'acme', '--scopes', 'admin', '--max-cost', '1e3');
    assert.equal(badMaxCost.code, 2);
  });

  it('gives a key its own cost maximum with --max-cost', async () => {
    const created = await cli('keys', 'create', '--tenant', 'acme', '--scopes', 'analytics:read', '--max-cost', '250');
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /max cost per operation: 250/);
    const key = created.stdout.trim().split('\n').at(-1)!;
    const response = await fetch(`${gateway.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ query: '{ viewer { costBudget { maxOperationCost } } }' }),
    });
    const body = (await response.json()) as {
      data: { viewer: { costBudget: { maxOperationCost: number } } };
      extensions: { cost: { maxOperationCost: number } };
    };
    assert.equal(body.data.viewer.costBudget.maxOperationCost, 250);
    assert.equal(body.extensions.cost.maxOperationCost, 250);
  });
});
