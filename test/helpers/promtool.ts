import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';

export type Tool = (...args: string[]) => string;

/**
 * A command-line tool from a Debian package (.ci/run installs them). On CI its absence fails the
 * test that needs it; elsewhere that test is skipped with a note saying how to get it.
 */
export function toolOrSkip(t: TestContext, command: string, debianPackage: string): Tool | undefined {
  const probe = spawnSync(command, ['--version'], { encoding: 'utf8' });
  if (probe.error) {
    if (process.env.CI === 'true') throw new Error(`${command} is missing on CI (apt-get install ${debianPackage})`);
    t.skip(`${command} is not installed (apt-get install ${debianPackage})`);
    return undefined;
  }
  return (...args: string[]) => {
    const run = spawnSync(command, args, { encoding: 'utf8' });
    const output = `${run.stdout}${run.stderr}`;
    if (run.status !== 0) throw new Error(`${command} ${args.join(' ')} failed:\n${output}`);
    return output;
  };
}

/** promtool, from Debian's prometheus package: checks and tests rules without a server. */
export const promtoolOrSkip = (t: TestContext) => toolOrSkip(t, 'promtool', 'prometheus');

/** amtool, from Debian's prometheus-alertmanager package: checks and tests routing without a server. */
export const amtoolOrSkip = (t: TestContext) => toolOrSkip(t, 'amtool', 'prometheus-alertmanager');
