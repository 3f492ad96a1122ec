import { parseArgs } from 'node:util';
import { SHORT_RUN, runChaos, type ChaosSettings } from '../test/helpers/chaos.js';

/**
 * npm run bench:chaos [-- --rounds 3 --clients 8 --batch 50 --settle 10]: the chaos run of
 * test/helpers/chaos.ts, longer than the test's (README "Benchmarks", "Chaos"). Prints the table
 * of faults and outcomes; exit code 1 when an acknowledged event was lost or doubled, or any other
 * check failed.
 */
const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '2' },
    clients: { type: 'string', default: '6' },
    batch: { type: 'string', default: '50' },
    think: { type: 'string', default: '20' },
    settle: { type: 'string', default: '8' },
    partitions: { type: 'string', default: '2' },
    quick: { type: 'boolean', default: false },
  },
});

const settings: ChaosSettings = values.quick
  ? SHORT_RUN
  : {
      ...SHORT_RUN,
      rounds: Number(values.rounds),
      clients: Number(values.clients),
      batchSize: Number(values.batch),
      thinkMs: Number(values.think),
      settleMs: Number(values.settle) * 1000,
      streamPartitions: Number(values.partitions),
    };
const started = Date.now();
const log = (line: string) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)} s] ${line}`);
log(`settings: ${JSON.stringify(settings)}`);
const report = await runChaos({ ...settings, log });
console.log(`\n${report.table}\n`);
if (report.problems.length) {
  console.log(`PROBLEMS:\n${report.problems.map((p) => `- ${p}`).join('\n')}`);
  process.exitCode = 1;
} else {
  console.log('every acknowledged event stored exactly once; live windows and rollups equal SQL');
}
