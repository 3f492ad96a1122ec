import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Every metric the gateway exports, in one place. Each app instance gets its own registry so two
 * gateways in one process (tests, or API and worker roles side by side) never collide.
 * Names follow the public contract in DESIGN.md and the issues; label sets are bounded.
 */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  return {
    registry,

    httpRequestDuration: new Histogram({
      name: 'http_request_duration_seconds',
      help: 'Time from receiving an HTTP request to finishing its response; observed once per response, by matched route (unmatched paths share one label) and status.',
      labelNames: ['method', 'route', 'status_code'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),

    authLookups: new Counter({
      name: 'auth_key_lookups_total',
      help: 'API key checks by outcome: cached (answered from the in-process cache), verified (looked up in Postgres), rejected (unknown or revoked key), stale (Postgres failed, a recently verified entry was used), error (Postgres failed, nothing cached).',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),

    authRevocationsReceived: new Counter({
      name: 'auth_revocations_received_total',
      help: "Key revocations received over Redis from any replica (including this one); each evicts the key from this replica's cache at once.",
      registers: [registry],
    }),

    dependencyUp: new Gauge({
      name: 'dependency_up',
      help: 'Result of the last readiness check of a dependency: 1 reachable, 0 not. Updated on every /ready probe.',
      labelNames: ['dependency'] as const,
      registers: [registry],
    }),

    dependencyCheckDuration: new Histogram({
      name: 'dependency_check_duration_seconds',
      help: 'Round trip of the readiness check of a dependency (SELECT 1, PING); observed on every /ready probe.',
      labelNames: ['dependency'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
