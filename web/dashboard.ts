import { createClient, type Client } from 'graphql-ws/client';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import './dashboard.css';

/**
 * The live dashboard page at /dashboard: a person pastes an API key, picks an event type and a
 * window, and watches the window's count, average and p95 move as metricUpdated pushes arrive over
 * graphql-ws. The key stays in this tab's sessionStorage (never in the URL, never in a cookie), and
 * goes to the gateway only as the Authorization header and the WebSocket's connectionParams.
 */

const KEY_STORAGE = 'analytics-gateway.api-key';
const CHART_POINTS = 600;

interface GatewayErrorShape {
  message: string;
  extensions?: { code?: string };
}
interface Overview {
  viewer: { tenant: string; keyName: string };
  eventTypes: Array<{ type: string; count: number; uniqueUsers: number; lastSeen: string }>;
  freshness: Array<{ source: string; stalenessMs: number }>;
}
interface MetricWindow {
  type: string | null;
  window: string;
  start: string;
  end: string;
  count: number;
  avg: number | null;
  p95: number | null;
  final: boolean;
}

const OVERVIEW = `query DashboardOverview {
  viewer { tenant keyName }
  eventTypes(first: 50) { type count uniqueUsers lastSeen }
  freshness { source stalenessMs }
}`;
const METRIC_UPDATED = `subscription DashboardMetric($type: String, $window: Window!) {
  metricUpdated(type: $type, window: $window) { type window start end count avg p95 final }
}`;

/** What a person should read for each error code the gateway sends. */
function explain(code: string | undefined, fallback: string): string {
  switch (code) {
    case 'UNAUTHENTICATED':
      return 'The key was refused: check it, or ask for a new one.';
    case 'FORBIDDEN':
      return 'This key may not read analytics (it lacks the analytics:read scope).';
    case 'RATE_LIMITED':
    case 'COST_LIMIT_EXCEEDED':
      return 'The key is over its limits for now; try again in a minute.';
    case 'SERVICE_UNAVAILABLE':
      return 'The gateway is unavailable right now; try again shortly.';
    default:
      return fallback;
  }
}

class GatewayError extends Error {
  constructor(
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`the page has no #${id}`);
  return found as T;
}

const ui = {
  form: element<HTMLFormElement>('connect-form'),
  key: element<HTMLInputElement>('api-key'),
  type: element<HTMLSelectElement>('event-type'),
  window: element<HTMLSelectElement>('window'),
  status: element<HTMLElement>('status'),
  count: element<HTMLOutputElement>('live-count'),
  avg: element<HTMLOutputElement>('live-avg'),
  p95: element<HTMLOutputElement>('live-p95'),
  windowRange: element<HTMLOutputElement>('live-window'),
  chart: element<HTMLDivElement>('chart'),
  eventTypes: element<HTMLTableSectionElement>('event-types'),
  freshness: element<HTMLTableSectionElement>('freshness'),
};

function setStatus(state: 'idle' | 'connecting' | 'live' | 'error', text: string): void {
  ui.status.dataset.state = state;
  ui.status.textContent = text;
}

async function query<T>(key: string, document: string): Promise<T> {
  let response: Response;
  try {
    response = await fetch('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ query: document }),
    });
  } catch {
    throw new GatewayError('SERVICE_UNAVAILABLE', 'The gateway cannot be reached.');
  }
  const body = (await response.json().catch(() => ({}))) as { data?: T; errors?: GatewayErrorShape[] };
  const first = body.errors?.[0];
  if (first) throw new GatewayError(first.extensions?.code, first.message);
  if (!body.data) throw new GatewayError(undefined, `The gateway answered ${response.status}.`);
  return body.data;
}

// --- chart: the window's count at each push, reset when a new window starts ---
const points: [number[], number[]] = [[], []];
const chart = new uPlot(
  {
    width: Math.max(320, ui.chart.clientWidth - 32),
    height: 240,
    scales: {
      // At least the last minute, so the first few pushes do not stretch over an absurd span.
      x: { time: true, range: (_u, min, max) => [Math.min(min, max - 60), max] },
      y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] },
    },
    series: [{}, { label: 'count', stroke: '#2563eb', fill: 'rgba(37, 99, 235, 0.12)', width: 2 }],
    axes: [{}, { label: 'events' }],
  },
  points,
  ui.chart,
);
new ResizeObserver(() => chart.setSize({ width: Math.max(320, ui.chart.clientWidth - 32), height: 240 })).observe(
  ui.chart,
);

let chartWindow: string | undefined;
function plot(snapshot: MetricWindow): void {
  if (snapshot.start !== chartWindow) {
    chartWindow = snapshot.start;
    points[0].length = 0;
    points[1].length = 0;
  }
  points[0].push(Date.now() / 1000);
  points[1].push(snapshot.count);
  if (points[0].length > CHART_POINTS) {
    points[0].shift();
    points[1].shift();
  }
  chart.setData(points);
  // How many pushes the chart holds, for whoever checks that it moves.
  ui.chart.dataset.points = String(points[0].length);
}

const number = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
const time = new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' });
const show = (value: number | null) => (value === null ? '–' : number.format(value));

function render(snapshot: MetricWindow): void {
  ui.count.textContent = String(snapshot.count);
  ui.avg.textContent = show(snapshot.avg);
  ui.p95.textContent = show(snapshot.p95);
  ui.windowRange.textContent = `${time.format(new Date(snapshot.start))} – ${time.format(new Date(snapshot.end))}`;
  plot(snapshot);
}

function cell(row: HTMLTableRowElement, text: string): void {
  row.insertCell().textContent = text;
}

function renderOverview(overview: Overview): void {
  const selected = ui.type.value;
  ui.type.replaceChildren(new Option('All events', ''));
  for (const t of overview.eventTypes) ui.type.add(new Option(t.type, t.type));
  ui.type.value = [...ui.type.options].some((o) => o.value === selected) ? selected : '';

  ui.eventTypes.replaceChildren();
  for (const t of overview.eventTypes) {
    const row = ui.eventTypes.insertRow();
    cell(row, t.type);
    cell(row, number.format(t.count));
    cell(row, number.format(t.uniqueUsers));
    cell(row, new Date(t.lastSeen).toLocaleString());
  }
  ui.freshness.replaceChildren();
  for (const f of overview.freshness) {
    const row = ui.freshness.insertRow();
    cell(row, f.source);
    cell(row, `${number.format(f.stalenessMs / 1000)} s`);
  }
}

// --- connection: one graphql-ws client per key, one subscription per (type, window) ---
let client: Client | undefined;
let unsubscribe: (() => void) | undefined;
let overviewTimer: ReturnType<typeof setInterval> | undefined;
let tenant = '';

function disconnect(): void {
  unsubscribe?.();
  unsubscribe = undefined;
  const closing = client;
  client = undefined;
  void closing?.dispose();
  clearInterval(overviewTimer);
}

function subscribe(): void {
  if (!client) return;
  unsubscribe?.();
  const owner = client;
  const type = ui.type.value || null;
  const window = ui.window.value;
  // Another series from here on: the chart starts over with the first snapshot.
  chartWindow = undefined;
  unsubscribe = owner.subscribe<{ metricUpdated: MetricWindow }>(
    { query: METRIC_UPDATED, variables: { type, window } },
    {
      next: (message) => {
        if (message.errors?.length) {
          const first = message.errors[0] as GatewayErrorShape;
          setStatus('error', explain(first.extensions?.code, first.message));
          return;
        }
        if (message.data) render(message.data.metricUpdated);
      },
      error: (err) => {
        if (client !== owner) return;
        // Retries are over (or the server refused the key): say so and leave it to the person.
        setStatus('error', describeClose(err) ?? 'Connection lost. Press Connect to try again.');
      },
      complete: () => undefined,
    },
  );
}

function describeClose(event: unknown): string | undefined {
  const code = (event as { code?: number } | undefined)?.code;
  if (code === 4401) return explain('UNAUTHENTICATED', '');
  if (code === 4403) return explain('FORBIDDEN', '');
  return undefined;
}

async function connect(key: string): Promise<void> {
  disconnect();
  setStatus('connecting', 'Connecting…');
  let overview: Overview;
  try {
    overview = await query<Overview>(key, OVERVIEW);
  } catch (err) {
    const e = err as GatewayError;
    setStatus('error', explain(e.code, e.message));
    return;
  }
  tenant = overview.viewer.tenant;
  renderOverview(overview);
  let lost = false;
  const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`;
  const own = createClient({
    url: wsUrl,
    connectionParams: { authorization: `Bearer ${key}` },
    retryAttempts: 5,
    // A refused key stays refused: no point retrying 4401 and 4403.
    shouldRetry: (event) => describeClose(event) === undefined,
    on: {
      connected: () => {
        if (client !== own) return;
        lost = false;
        setStatus('live', `Live · tenant ${tenant} · key ${overview.viewer.keyName}`);
      },
      connecting: () => {
        if (client === own && !lost) setStatus('connecting', 'Connecting…');
      },
      closed: (event) => {
        if (client !== own) return;
        const refused = describeClose(event);
        if (refused) return setStatus('error', refused);
        lost = true;
        setStatus('error', 'Connection lost; reconnecting…');
      },
    },
  });
  client = own;
  subscribe();
  overviewTimer = setInterval(() => {
    query<Overview>(key, OVERVIEW).then(
      (o) => client === own && renderOverview(o),
      () => undefined,
    );
  }, 15_000);
}

ui.form.addEventListener('submit', (event) => {
  event.preventDefault();
  const key = ui.key.value.trim();
  if (!key) return setStatus('error', 'Enter an API key first.');
  sessionStorage.setItem(KEY_STORAGE, key);
  void connect(key);
});
ui.type.addEventListener('change', subscribe);
ui.window.addEventListener('change', subscribe);
ui.key.value = sessionStorage.getItem(KEY_STORAGE) ?? '';
