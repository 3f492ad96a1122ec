import type { FastifyInstance } from 'fastify';
import type { DashboardAsset } from '../web/dashboard-assets.js';

/** The live dashboard page and the files it loads, read once at start-up (web/dashboard-assets.ts). */
export function registerDashboardRoutes(app: FastifyInstance, assets: readonly DashboardAsset[]): void {
  for (const asset of assets) {
    app.get(asset.path, async (_request, reply) =>
      reply.headers(asset.headers).type(asset.contentType).send(asset.body),
    );
  }
}
