import { request, Agent } from 'node:http';
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { closedPort } from '../test/helpers/tcp-proxy.js';
import { isolatedEnv, waitFor } from '../test/helpers/test-env.js';
import { startNode, stopProcess } from './support/processes.js';

/**
 * bench:soak — the gateway as `npm start` runs it (ROLE=all, production) under a steady ingest
 * load for a while, sampled every --sample seconds: resident memory, event-loop delay, callers
 * waiting for a Postgres connection, stream lag per consumer group, and events accepted and
 * persisted. Printed as a table, then judged against the bounds stated below; the exit code is 1
 * when one is broken.
 *
 *   npm run bench:soak -- [--minutes 10] [--rate 20000] [--batch 1000] [--sample 10]
 *
 * Bounds, from the second sample on (the first includes start-up and JIT warm-up):
 * - RSS grows by less than 25% and less than 150 MiB from the second sample to the last;
 * - event-loop delay p99 below 100 ms at every sample;
 * - no caller waiting for a Postgres connection at more than one sample in five;
 * - stream lag of each group at the end below what 30 s of the offered rate would leave.
 */
const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    rate: { type: 'string', default: '20000' },
    batch: { type: 'string', default: '1000' },
    sample: { type: 'string', default: '10' },
  },
});
const minutes = Number(values.minutes);
const rate = Number(values.rate);
const batch = Number(values.batch);
const sampleS = Number(values.sample);
const KEY = 'agk_bench-soak-key-000000000000000000000000000000000';
const MAX_IN_FLIGHT = 8;

interface Sample {
  readonly at: number;
  readonly rssMiB: number;
  readonly loopP99Ms: number;
  readonly poolWaiting: number;
  readonly lag: Record<string, number>;
  readonly accepted: number;
  readonly persisted: number;
}

/** Sums every series of a metric in a Prometheus text exposition, optionally those with a label value. */
function metric(text: string, name: string, label?: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== '{' && line[name.length] !== ' ')) continue;
    if (label && !line.includes(label)) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

async function sample(url: string, started: number): Promise<Sample> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const lag: Record<string, number> = {};
  for (const group of ['persist', 'aggregate']) lag[group] = metric(text, 'stream_group_lag', `group="${group}"`);
  return {
    at: (Date.now() - started) / 1000,
    rssMiB: metric(text, 'process_resident_memory_bytes') / 2 ** 20,
    loopP99Ms: metric(text, 'nodejs_eventloop_lag_p99_seconds') * 1000,
    poolWaiting: metric(text, 'db_pool_connections', 'state="waiting"'),
    lag,
    accepted: metric(text, 'events_ingested_total'),
    persisted: metric(text, 'events_persisted_total'),
  };
}

/** Paced load: every 100 ms, the batches the rate asks for, at most MAX_IN_FLIGHT requests in flight. */
function startLoad(url: string, until: number) {
  const agent = new Agent({ keepAlive: true, maxSockets: MAX_IN_FLIGHT });
  const target = new URL('/graphql', url);
  const body = (n: number) =>
    JSON.stringify({
      query: 'mutation Soak($events: [EventInput!]!) { recordEvents(events: $events) { accepted } }',
      variables: {
        events: Array.from({ length: n }, (_, i) => ({
          type: i % 5 === 0 ? 'purchase' : 'page_view',
          userId: `u${(i * 7919) % 5000}`,
          messageId: randomUUID(),
          value: i % 5 === 0 ? (i % 300) + 1 : null,
          properties: { path: `/p/${i % 40}` },
        })),
      },
    });
  let inFlight = 0;
  let owed = 0;
  let refused = 0;
  let failed = 0;
  const send = () =>
    new Promise<void>((resolve) => {
      inFlight++;
      const req = request(
        target,
        { method: 'POST', agent, headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` } },
        (res) => {
          res.resume();
          res.on('end', () => {
            if (res.statusCode === 429 || res.statusCode === 503) refused++;
            else if (res.statusCode !== 200) failed++;
            inFlight--;
            resolve();
          });
        },
      );
      req.on('error', () => {
        failed++;
        inFlight--;
        resolve();
      });
      req.end(body(batch));
    });
  const timer = setInterval(() => {
    if (Date.now() >= until) return clearInterval(timer);
    owed += rate / 10 / batch;
    while (owed >= 1 && inFlight < MAX_IN_FLIGHT) {
      owed--;
      void send();
    }
    // What could not be sent stays owed only up to one tick's worth: the generator reports what it offered.
    owed = Math.min(owed, rate / 10 / batch);
  }, 100);
  return {
    stats: () => ({ refused, failed }),
    drained: () => waitFor(async () => inFlight === 0, 30_000).then(() => agent.destroy()),
  };
}

const isolation = isolatedEnv('bench_soak');
const port = await closedPort();
const url = `http://127.0.0.1:${port}`;
const gateway = startNode(
  new URL('../src/main.js', import.meta.url),
  [],
  isolation.env({
    NODE_ENV: 'production',
    ROLE: 'all',
    LOG_LEVEL: 'warn',
    PORT: String(port),
    BOOTSTRAP_API_KEY: KEY,
    COST_BUDGET_CAPACITY: '1000000000',
    COST_BUDGET_RESTORE_PER_MINUTE: '1000000000',
  }),
  ['--max-semi-space-size=64'],
);
try {
  await waitFor(async () => (await fetch(`${url}/ready`).catch(() => null))?.status === 200, 60_000, 200);
  console.log(
    `bench:soak  ${minutes} min at ${rate} events/s offered (batches of ${batch}, ≤ ${MAX_IN_FLIGHT} in flight), ROLE=all, sampled every ${sampleS} s\n`,
  );
  const started = Date.now();
  const load = startLoad(url, started + minutes * 60_000);
  const samples: Sample[] = [];
  const header = [
    't (s)',
    'RSS MiB',
    'loop p99 ms',
    'pool waiting',
    'lag persist',
    'lag aggregate',
    'accepted/s',
    'persisted/s',
  ];
  console.log(header.map((h) => h.padEnd(15)).join(''));
  while (Date.now() - started < minutes * 60_000) {
    await new Promise((r) => setTimeout(r, sampleS * 1000));
    const s = await sample(url, started);
    const prev = samples.at(-1);
    samples.push(s);
    const per = (now: number, before: number | undefined) =>
      prev ? ((now - (before ?? 0)) / (s.at - prev.at)).toFixed(0) : '-';
    console.log(
      [
        s.at.toFixed(0),
        s.rssMiB.toFixed(0),
        s.loopP99Ms.toFixed(1),
        String(s.poolWaiting),
        String(s.lag.persist),
        String(s.lag.aggregate),
        per(s.accepted, prev?.accepted),
        per(s.persisted, prev?.persisted),
      ]
        .map((c) => c.padEnd(15))
        .join(''),
    );
  }
  await load.drained();
  const { refused, failed } = load.stats();

  const steady = samples.slice(1);
  const problems: string[] = [];
  if (steady.length >= 2) {
    const first = steady[0]!.rssMiB;
    const last = steady.at(-1)!.rssMiB;
    if (last - first >= 150 || last >= first * 1.25) {
      problems.push(`RSS grew from ${first.toFixed(0)} to ${last.toFixed(0)} MiB`);
    }
    const slow = steady.filter((s) => s.loopP99Ms >= 100);
    if (slow.length) problems.push(`event-loop p99 ≥ 100 ms at ${slow.length} samples`);
    const waiting = steady.filter((s) => s.poolWaiting > 0).length;
    if (waiting * 5 > steady.length)
      problems.push(`callers waiting for Postgres at ${waiting} of ${steady.length} samples`);
    for (const [group, lag] of Object.entries(steady.at(-1)!.lag)) {
      if (lag >= rate * 30) problems.push(`stream lag of ${group} at the end: ${lag} entries`);
    }
  } else {
    problems.push('too short to judge: needs at least three samples');
  }
  console.log(`\nrequests refused with 429/503: ${refused}, failed otherwise: ${failed}`);
  console.log(problems.length ? `NOT FLAT:\n  ${problems.join('\n  ')}` : 'flat within the stated bounds');
  if (problems.length || failed > 0) process.exitCode = 1;
} finally {
  await stopProcess(gateway);
  await isolation.cleanup();
}
