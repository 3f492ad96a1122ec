import type { FastifyInstance } from 'fastify';
import type { Metrics } from '../observability/metrics.js';
import { readinessHttpStatus, type Readiness } from '../observability/readiness.js';

/**
 * Probes and metrics for operators. `/health` says only that the process serves HTTP (a restart
 * would not fix a database outage, so liveness must not depend on one); `/ready` checks every
 * dependency and answers 503 naming the failing ones when the replica cannot serve, so a load
 * balancer stops sending traffic, and 200 "degraded" naming them when it still serves without them.
 */
export function registerOperationsRoutes(app: FastifyInstance, deps: { readiness: Readiness; metrics: Metrics }): void {
  app.get('/health', async () => ({ status: 'ok', uptime_s: Math.round(process.uptime()) }));
  app.get('/ready', async (_request, reply) => {
    const report = await deps.readiness.report();
    return reply.code(readinessHttpStatus(report)).send(report);
  });
  app.get('/metrics', async (_request, reply) => {
    const body = await deps.metrics.registry.metrics();
    return reply.type(deps.metrics.registry.contentType).send(body);
  });
}
