import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { DASHBOARD_CSP } from '../../src/web/dashboard-assets.js';
import { CreateApiKeyDocument, EventTypesDocument, RecordEventsDocument } from '../generated/graphql.js';
import { startGateway, type RunningGateway } from '../helpers/gateway.js';
import { gql } from '../helpers/graphql-client.js';
import { isolatedEnv, waitFor } from '../helpers/test-env.js';

/**
 * The /dashboard page in a real headless Chromium (Debian's, which .ci/run installs): a person types
 * a key, connects, and sees the live count reach the number of events just recorded; a bad key and a
 * lost connection are shown on the page. Saves docs/dashboard.png, the README's screenshot.
 */
const CHROMIUM = '/usr/bin/chromium';
const ADMIN = 'agk_dashboard-browser-admin-key-00000000000000000';
const SENT = 7;

function chromiumOrSkip(t: TestContext): boolean {
  if (existsSync(CHROMIUM)) return true;
  if (process.env.CI === 'true') throw new Error(`${CHROMIUM} is missing on CI (apt-get install chromium)`);
  t.skip(`${CHROMIUM} is not installed (apt-get install chromium)`);
  return false;
}

describe('the /dashboard page in Chromium', () => {
  const isolation = isolatedEnv('dashboard_browser');
  let gateway: RunningGateway | undefined;
  let browser: BrowserContext | undefined;
  let profile: string | undefined;
  const requests: string[] = [];
  const consoleErrors: string[] = [];

  async function open(): Promise<Page> {
    const page = await browser!.newPage();
    page.on('request', (r) => requests.push(r.url()));
    page.on('console', (m) => void (m.type() === 'error' && consoleErrors.push(m.text())));
    page.on('pageerror', (err) => consoleErrors.push(err.message));
    const response = await page.goto(`${gateway!.url}/dashboard`);
    assert.equal(response?.status(), 200);
    assert.equal(response?.headers()['content-security-policy'], DASHBOARD_CSP);
    return page;
  }

  before(async () => {
    if (!existsSync(CHROMIUM)) return;
    gateway = await startGateway(
      isolation.env({
        ROLE: 'all',
        BOOTSTRAP_API_KEY: ADMIN,
        // Pushes at most every 50 ms, so the page follows quickly.
        REALTIME_PUSH_INTERVAL_MS: '50',
        ROLLUP_REFRESH_INTERVAL_MS: '200',
        TRACING_ENABLED: 'false',
      }),
    );
    profile = await mkdtemp(join(tmpdir(), 'agw-chromium-'));
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1200, height: 900 },
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });

  after(async () => {
    await browser?.close();
    if (profile) await rm(profile, { recursive: true, force: true });
    await gateway?.stop();
    await isolation.cleanup();
  });

  it('shows a refused key to the person', async (t) => {
    if (!chromiumOrSkip(t)) return;
    const page = await open();
    await page.getByTestId('api-key').fill('agk_this-key-does-not-exist-000000000000000000000');
    await page.getByTestId('connect').click();
    await page.getByTestId('status').filter({ hasText: 'The key was refused' }).waitFor({ timeout: 10_000 });
    assert.equal(await page.getByTestId('live-count').textContent(), '–');

    // A valid key without analytics:read is told so, too.
    const created = await gql(gateway!.url, CreateApiKeyDocument, {
      key: ADMIN,
      variables: { name: 'writer only', scopes: ['events:write'] },
    });
    await page.getByTestId('api-key').fill(created.data!.createApiKey.key);
    await page.getByTestId('connect').click();
    await page.getByTestId('status').filter({ hasText: 'lacks the analytics:read scope' }).waitFor({ timeout: 10_000 });
    await page.close();
  });

  it('counts recorded events live, keeps the key out of the URL, and shows a lost connection', async (t) => {
    if (!chromiumOrSkip(t)) return;
    const url = gateway!.url;
    // The refusals of the test before are logged as failed loads; this one starts clean.
    consoleErrors.length = 0;
    const record = async (type: string, values: number[]) => {
      const sent = await gql(url, RecordEventsDocument, {
        key: ADMIN,
        variables: { events: values.map((value, i) => ({ type, userId: `u${i % 3}`, value })) },
      });
      assert.equal(sent.data?.recordEvents.accepted, values.length);
    };
    // Values 10, 20, …, 70 in three batches: the window's average is 40.
    const batches = [
      [10, 20, 30],
      [40, 50],
      [60, 70],
    ];
    assert.equal(batches.flat().length, SENT);
    await record('checkout', batches[0]!);
    await record('page_view', [1, 2]);
    // The picker lists the types the rollups know: wait for the refresher to have them.
    await waitFor(async () => {
      const types = await gql(url, EventTypesDocument, { key: ADMIN, variables: { first: 10 } });
      return (types.data?.eventTypes ?? []).some((e) => e.type === 'checkout');
    }, 15_000);

    const page = await open();
    await page.getByTestId('api-key').fill(ADMIN);
    await page.getByTestId('connect').click();
    await page.getByTestId('status').filter({ hasText: 'Live' }).waitFor({ timeout: 10_000 });
    await page.getByTestId('event-type').selectOption('checkout');
    // The first snapshot of the new subscription arrives at once: checkout events only.
    await page.getByTestId('live-count').filter({ hasText: /^3$/ }).waitFor({ timeout: 10_000 });
    await record('checkout', batches[1]!);
    await page.getByTestId('live-count').filter({ hasText: /^5$/ }).waitFor({ timeout: 10_000 });
    await record('checkout', batches[2]!);
    await page
      .getByTestId('live-count')
      .filter({ hasText: new RegExp(`^${SENT}$`) })
      .waitFor({ timeout: 10_000 });
    assert.equal(await page.getByTestId('live-avg').textContent(), '40');
    assert.match((await page.getByTestId('event-types').textContent()) ?? '', /checkout/);
    assert.match((await page.getByTestId('freshness').textContent()) ?? '', /rollup_hour/);
    await page.locator('#chart canvas').waitFor();
    // One point per push: the first snapshot and one after each batch, at least.
    assert.ok(Number(await page.getByTestId('chart').getAttribute('data-points')) >= 3, 'the chart moved');
    await page.screenshot({ path: 'docs/dashboard.png', fullPage: true });

    // The key lives in this tab's session storage only, never in a URL.
    assert.ok(!page.url().includes(ADMIN));
    assert.ok(
      requests.every((u) => !u.includes(ADMIN)),
      'the key is in no URL the page requested',
    );
    assert.equal(await page.evaluate('sessionStorage.getItem("analytics-gateway.api-key")'), ADMIN);
    // Nothing came from another origin (the WebSocket is the same host and port).
    const origin = new URL(url).origin;
    assert.deepEqual(
      requests.filter((u) => new URL(u).origin !== origin),
      [],
    );

    // The page ran under its Content-Security-Policy without a refusal or an error.
    assert.deepEqual(consoleErrors, []);

    // A reload of the tab keeps the key (and only this tab has it).
    await page.reload();
    assert.equal(await page.getByTestId('api-key').inputValue(), ADMIN);
    await page.getByTestId('connect').click();
    await page.getByTestId('status').filter({ hasText: 'Live' }).waitFor({ timeout: 10_000 });

    await gateway!.stop();
    await page.getByTestId('status').filter({ hasText: 'Connection lost' }).waitFor({ timeout: 15_000 });
    await page.close();
  });
});
