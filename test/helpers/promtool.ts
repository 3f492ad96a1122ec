import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';

/**
 * promtool, from Debian's prometheus package (.ci/run installs it). On CI its absence fails the
 * test that needs it; elsewhere that test is skipped with a note saying how to get it.
 */
export function promtoolOrSkip(t: TestContext): ((...args: string[]) => string) | undefined {
  const probe = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  if (probe.error) {
    if (process.env.CI === 'true') throw new Error('promtool is missing on CI (apt-get install prometheus)');
    t.skip('promtool is not installed (apt-get install prometheus)');
    return undefined;
  }
  return (...args: string[]) => {
    const run = spawnSync('promtool', args, { encoding: 'utf8' });
    const output = `${run.stdout}${run.stderr}`;
    if (run.status !== 0) throw new Error(`promtool ${args.join(' ')} failed:\n${output}`);
    return output;
  };
}
