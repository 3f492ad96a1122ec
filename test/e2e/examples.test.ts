import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { createDashboardClient, type MetricWindow } from '../../examples/dashboard-client.js';
import { retryAfterMs } from '../../examples/partner-ingest.js';
import { CreateApiKeyDocument, EventTypesDocument, RecordEventsDocument } from '../generated/graphql.js';
import { startGateway, type RunningGateway } from '../helpers/gateway.js';
import { gql } from '../helpers/graphql-client.js';
import { isolatedEnv, waitFor } from '../helpers/test-env.js';

/**
 * examples/ against live gateways. The partner's script runs as its own process against a replica
 * whose cost budget is tiny (2 points, 1 a second back), so it must wait out RATE_LIMITED answers
 * with their Retry-After; a second replica with the default limits persists, aggregates and serves
 * the dashboard client.
 */
const ADMIN = 'agk_examples-admin-key-00000000000000000000000000';
const PARTNER_JS = fileURLToPath(new URL('../../examples/partner-ingest.js', import.meta.url));
const run = promisify(execFile);

interface Report {
  batches: number;
  accepted: number;
  duplicates: number;
  rejected: number;
  retries: number;
}

async function partner(url: string, key: string, args: string[]): Promise<{ report: Report; log: string }> {
  const { stdout, stderr } = await run(process.execPath, [PARTNER_JS, '--url', url, ...args], {
    env: { PATH: process.env.PATH, API_KEY: key },
  });
  return { report: JSON.parse(stdout.trim().split('\n').at(-1)!) as Report, log: stderr };
}

describe('examples/', () => {
  const isolation = isolatedEnv('examples');
  let main: RunningGateway;
  let tight: RunningGateway;
  let partnerKey: string;

  before(async () => {
    main = await startGateway(
      isolation.env({
        ROLE: 'all',
        BOOTSTRAP_API_KEY: ADMIN,
        ROLLUP_REFRESH_INTERVAL_MS: '200',
        REALTIME_PUSH_INTERVAL_MS: '50',
        TRACING_ENABLED: 'false',
      }),
    );
    tight = await startGateway(
      isolation.env({
        ROLE: 'api',
        MIGRATE_ON_START: 'false',
        // A batch of 200 events costs 2 points: each one empties the budget, which takes 2 s to refill.
        COST_BUDGET_CAPACITY: '2',
        COST_BUDGET_RESTORE_PER_MINUTE: '60',
        TRACING_ENABLED: 'false',
      }),
    );
    const created = await gql(main.url, CreateApiKeyDocument, {
      key: ADMIN,
      variables: { name: 'partner', scopes: ['events:write'] },
    });
    partnerKey = created.data!.createApiKey.key;
  });

  after(async () => {
    await tight?.stop();
    await main?.stop();
    await isolation.cleanup();
  });

  it('partner-ingest: sends every event once, waiting out RATE_LIMITED; a rerun is all duplicates', async () => {
    const first = await partner(tight.url, partnerKey, [
      '--events',
      '600',
      '--batch',
      '50',
      '--type',
      'partner',
      '--run-id',
      'r1',
    ]);
    assert.deepEqual(
      { ...first.report, retries: 0 },
      { batches: 12, accepted: 600, duplicates: 0, rejected: 0, retries: 0 },
    );
    assert.ok(
      first.report.retries > 0,
      `the budget ran short at least once: ${JSON.stringify(first.report)} ${first.log}`,
    );
    assert.match(first.log, /RATE_LIMITED: .*retrying in \d+ ms/);

    // Same run id, same messageIds: nothing is stored twice.
    const again = await partner(main.url, partnerKey, [
      '--events',
      '100',
      '--batch',
      '50',
      '--type',
      'partner',
      '--run-id',
      'r1',
    ]);
    assert.equal(again.report.accepted, 0);
    assert.equal(again.report.duplicates, 100);

    await waitFor(async () => {
      const types = await gql(main.url, EventTypesDocument, { key: ADMIN, variables: { first: 10 } });
      return types.data?.eventTypes.find((t) => t.type === 'partner')?.count === 600;
    }, 20_000);
  });

  it('partner-ingest: reads Retry-After as seconds or as a date, else the error’s retryAfter', () => {
    assert.equal(retryAfterMs('2', undefined), 2000);
    assert.equal(retryAfterMs(new Date(10_000).toUTCString(), undefined, 4_000), 6000);
    assert.equal(retryAfterMs(null, { extensions: { retryAfter: 3 } }), 3000);
    assert.equal(retryAfterMs(null, {}), undefined);
  });

  it('dashboard-client: lists event types and follows a live window over graphql-ws with Apollo Client', async () => {
    const client = createDashboardClient({ url: main.url, key: ADMIN });
    const seen: MetricWindow[] = [];
    const errors: unknown[] = [];
    const stop = client.watch(
      { type: 'dash', window: 'ONE_HOUR' },
      (w) => seen.push(w),
      (e) => errors.push(e),
    );
    try {
      await waitFor(async () => seen.length > 0, 10_000);
      const before = seen.at(-1)!.count;
      const sent = await gql(main.url, RecordEventsDocument, {
        key: ADMIN,
        variables: { events: [1, 2, 3, 4].map((value) => ({ type: 'dash', value })) },
      });
      assert.equal(sent.data?.recordEvents.accepted, 4);
      await waitFor(async () => seen.at(-1)!.count === before + 4, 10_000);
      assert.equal(seen.at(-1)!.type, 'dash');
      assert.equal(seen.at(-1)!.window, 'ONE_HOUR');
      assert.deepEqual(errors, []);

      const overview = await client.eventTypes(10);
      assert.ok(overview.eventTypes.some((t) => t.type === 'partner'));
      assert.ok(overview.freshness.length > 0);
    } finally {
      stop();
      await client.close();
    }
  });
});
