import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SHORT_RUN, runChaos } from '../helpers/chaos.js';

// The short chaos run (bench/chaos.bench.ts runs the longer one): two APIs and two workers behind
// proxies of the run's own, faults one after another under load, then the ledger checked against
// Postgres, the live windows and the rollups (README, "Guarantees and the tests that show them").
describe('a chaos run with a ledger', () => {
  it('loses and doubles no acknowledged event through worker and API kills, Redis and Postgres cuts and pauses', async (t) => {
    const progress: string[] = [];
    const report = await runChaos({ ...SHORT_RUN, log: (line) => progress.push(line) });
    t.diagnostic(`\n${report.table}`);
    for (const fault of report.faults) {
      assert.equal(fault.lost, 0, `${fault.fault}: lost\n${report.table}`);
      assert.equal(fault.doubled, 0, `${fault.fault}: doubled\n${report.table}`);
    }
    assert.ok(report.totals.acknowledged > 0);
    assert.deepEqual(report.problems, [], `${report.table}\n${progress.join('\n')}`);
  });
});
