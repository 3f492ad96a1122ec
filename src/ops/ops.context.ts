import type { RollupRebuilder } from '../analytics/rollup-rebuild.service.js';
import type { RequestContext } from '../auth/request-context.js';
import type { DeadLetterService } from '../ingest/dead-letter-replay.js';
import type { SystemStatusService } from './system-status.service.js';

/** What the operator resolvers (dead letters, rollup rebuilds, systemStatus) reach. */
export interface OpsContext extends RequestContext {
  readonly services: {
    readonly deadLetters: DeadLetterService;
    readonly rollupRebuild: RollupRebuilder;
    readonly systemStatus: SystemStatusService;
  };
}
