import type { RequestContext } from '../auth/request-context.js';
import type { DeadLetterService } from './dead-letter-replay.js';
import type { IngestService } from './ingest.service.js';

/** What the ingestion resolvers reach. */
export interface IngestContext extends RequestContext {
  readonly services: { readonly ingest: IngestService; readonly deadLetters: DeadLetterService };
}
