import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';

/**
 * The subscriber side of bench:realtime, in a process of its own: `count` graphql-ws connections,
 * spread over the API replicas in turn, each subscribed to metricUpdated(window: ONE_MINUTE) of one
 * of `channels` channels (subscriber i: channel i mod channels; channel 0 all of the tenant's
 * events, channel c the events of type TYPES[c - 1]). It records
 * when each snapshot arrived and the tenant's running total it shows (windows roll each minute,
 * so the total is the sum over window starts of each window's latest count).
 *
 *   node realtime-subscribers.js <gatewayUrl,gatewayUrl...> <key> <count> [channels]
 *
 * IPC: sends {ready} once every subscription has its first snapshot; on {report, batches} (each
 * batch: cumulative events acknowledged, when it was sent, when it was answered) answers with the
 * latency of every (batch, subscriber) pair and the snapshots received.
 */
const [urls, key, countText, channelsText] = process.argv.slice(2) as [string, string, string, string | undefined];
const count = Number(countText);
const channels = Number(channelsText ?? '1');
// As bench/realtime.bench.ts generates them: event n (counted from 0 over the run) has type
// TYPES[n % TYPES.length].
const TYPES = ['page_view', 'click', 'search', 'purchase', 'signup', 'error'];
/** Of the first `total` events of the run, how many a subscriber of `channel` counts. */
const countedOf = (channel: number, total: number) =>
  channel === 0 ? total : Math.max(0, Math.ceil((total - (channel - 1)) / TYPES.length));
const now = () => performance.timeOrigin + performance.now();

const QUERY = 'subscription($type: String) { metricUpdated(window: ONE_MINUTE, type: $type) { start count revision } }';

interface Subscriber {
  readonly perStart: Map<string, number>;
  /** Arrival times and totals, in arrival order. */
  readonly times: number[];
  readonly totals: number[];
  readonly channel: number;
  ready: boolean;
}

const subscribers: Subscriber[] = [];
const clients: Client[] = [];
let received = 0;

for (let i = 0; i < count; i++) {
  const channel = i % channels;
  const s: Subscriber = { perStart: new Map(), times: [], totals: [], channel, ready: false };
  subscribers.push(s);
  const replicas = urls.split(',');
  const url = replicas[i % replicas.length]!;
  const client = createClient({
    url: `${url.replace('http', 'ws')}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${key}` },
    retryAttempts: 0,
  });
  clients.push(client);
  client.subscribe<{ metricUpdated: { start: string; count: number } }>(
    { query: QUERY, variables: { type: channel === 0 ? null : TYPES[channel - 1] } },
    {
      next: ({ data }) => {
        if (!data) return;
        received++;
        s.perStart.set(data.metricUpdated.start, data.metricUpdated.count);
        let total = 0;
        for (const n of s.perStart.values()) total += n;
        s.times.push(now());
        s.totals.push(total);
        s.ready = true;
      },
      error: (err) => console.error('subscription failed', err),
      complete: () => undefined,
    },
  );
  // Open connections at a pace the gateway's key checks and the handshake keep up with.
  if (i % 50 === 49) await new Promise((resolve) => setTimeout(resolve, 20));
}

const readiness = setInterval(() => {
  if (subscribers.every((s) => s.ready)) {
    clearInterval(readiness);
    process.send!({ ready: true, at: now() });
  }
}, 20);

process.on(
  'message',
  (msg: { report?: true; since: number; batches: { cum: number; sentAt: number; answeredAt: number }[] }) => {
    if (!msg.report) return;
    const fromSent: number[] = [];
    const fromAnswer: number[] = [];
    let missed = 0;
    for (const s of subscribers) {
      let j = 0;
      for (const b of msg.batches) {
        const expected = countedOf(s.channel, b.cum);
        while (j < s.totals.length && s.totals[j]! < expected) j++;
        if (j === s.totals.length) {
          missed++;
          continue;
        }
        fromSent.push(s.times[j]! - b.sentAt);
        fromAnswer.push(Math.max(0, s.times[j]! - b.answeredAt));
      }
    }
    const windowReceived = subscribers.reduce((n, s) => n + s.times.filter((t) => t >= msg.since).length, 0);
    process.send!({ fromSent, fromAnswer, missed, received, windowReceived });
  },
);

process.on('disconnect', () => {
  for (const c of clients) void c.dispose();
  process.exit(0);
});
