import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { ENVIRONMENT_VARIABLES, loadConfig } from '../../../src/config/config.js';

/**
 * No Docker engine runs here or on CI, so the docker/ files are checked by reading them: what
 * they reference must exist, and what they configure must be what the gateway reads.
 */
const dockerfile = readFileSync('docker/Dockerfile', 'utf8');
const instructions = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));
const stages = instructions.reduce<string[][]>((acc, line) => {
  if (line.startsWith('FROM ')) acc.push([]);
  acc.at(-1)?.push(line);
  return acc;
}, []);
const runtime = stages.at(-1) ?? [];

interface ComposeFile {
  services: Record<
    string,
    { command?: string[]; environment?: Record<string, string>; build?: { context: string; dockerfile: string } }
  >;
}
const compose = parse(readFileSync('docker/compose.yml', 'utf8')) as ComposeFile;

describe('docker/Dockerfile', () => {
  it('is multi-stage, on the Node major the project runs on', () => {
    assert.ok(stages.length >= 2, 'a build stage and a runtime stage');
    for (const stage of stages) assert.match(stage[0]!, /^FROM node:20[-.\w]* AS \w+$/);
  });

  it('runs the runtime stage as a non-root user with a healthcheck on /health', () => {
    const user = runtime.find((l) => l.startsWith('USER '));
    assert.ok(user, 'USER is set');
    assert.doesNotMatch(user!, /USER (root|0)\b/);
    const healthcheck = runtime.find((l) => l.startsWith('HEALTHCHECK '));
    assert.match(healthcheck ?? '', /\/health/);
  });

  it('copies only paths that exist, and starts the compiled entry point of src/main.ts', () => {
    for (const line of instructions.filter((l) => l.startsWith('COPY ') && !l.includes('--from='))) {
      const parts = line.split(/\s+/).filter((p) => !p.startsWith('--'));
      for (const source of parts.slice(1, -1)) assert.ok(existsSync(source), `${source} exists`);
    }
    const cmd = runtime.find((l) => l.startsWith('CMD '));
    assert.match(cmd ?? '', /"dist\/src\/main\.js"/);
    assert.ok(existsSync('src/main.ts'));
    assert.ok(
      runtime.some((l) => l.includes('migrations ./migrations')),
      'migrations ship with the image',
    );
  });

  it('is not starved by .dockerignore', () => {
    const ignored = readFileSync('.dockerignore', 'utf8')
      .split('\n')
      .map((l) => l.trim());
    for (const needed of ['src', 'migrations', 'package.json', 'package-lock.json', 'tsconfig.json']) {
      assert.ok(!ignored.includes(needed), `${needed} reaches the build`);
    }
  });
});

describe('docker/compose.yml', () => {
  it('runs postgres, redis with its append-only file on, and the gateway built from docker/Dockerfile', () => {
    assert.deepEqual(Object.keys(compose.services).sort(), ['gateway', 'postgres', 'redis']);
    const redisCommand = compose.services.redis!.command!.join(' ');
    assert.match(redisCommand, /--appendonly yes/);
    const build = compose.services.gateway!.build!;
    assert.ok(existsSync(`docker/${build.context}/${build.dockerfile}`));
  });

  it('configures the gateway only with variables it reads, and values it accepts', () => {
    const environment = compose.services.gateway!.environment!;
    for (const name of Object.keys(environment))
      assert.ok(ENVIRONMENT_VARIABLES.includes(name), `${name} is a gateway setting`);
    // ${VAR:-default} substitutions resolve to their default when unset.
    const resolved = Object.fromEntries(
      Object.entries(environment).map(([k, v]) => [k, String(v).replace(/\$\{\w+:-([^}]*)\}/g, '$1')]),
    );
    const config = loadConfig(resolved);
    assert.equal(new URL(config.database.url).hostname, 'postgres');
    assert.equal(new URL(config.redis.url).hostname, 'redis');
    assert.equal(config.http.host, '0.0.0.0');
  });
});
