import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { ENVIRONMENT_VARIABLES, loadConfig } from '../../../src/config/config.js';
import { promtoolOrSkip } from '../../helpers/promtool.js';

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

interface ComposeService {
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  build?: { context: string; dockerfile: string };
  healthcheck?: { test: string[] };
  volumes?: string[];
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
}
interface ComposeFile {
  services: Record<string, ComposeService>;
}
// The compose file shares the gateway's settings through anchors and merge keys (<<).
const compose = parse(readFileSync('docker/compose.yml', 'utf8'), { merge: true }) as ComposeFile;
const GATEWAYS = { 'api-1': 'api', 'api-2': 'api', worker: 'worker' } as const;

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
  it('runs the whole stack: stores, two API replicas and a worker, and the monitoring services', () => {
    assert.deepEqual(Object.keys(compose.services).sort(), [
      'alertmanager',
      'api-1',
      'api-2',
      'grafana',
      'jaeger',
      'postgres',
      'prometheus',
      'redis',
      'worker',
    ]);
    const redisCommand = compose.services.redis!.command!.join(' ');
    assert.match(redisCommand, /--appendonly yes/);
    for (const name of Object.keys(GATEWAYS)) {
      const build = compose.services[name]!.build!;
      assert.ok(existsSync(`docker/${build.context}/${build.dockerfile}`), `${name} is built from docker/Dockerfile`);
    }
  });

  it('pins every image by a version tag and gives every service a health check', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      if (!service.build) assert.match(service.image ?? '', /^[\w./-]+:v?\d+(\.\d+)+$/, `${name} pins its image`);
      assert.ok(service.healthcheck?.test?.length, `${name} has a healthcheck`);
      assert.notEqual(service.healthcheck!.test[0], 'NONE', `${name} has a healthcheck`);
    }
  });

  it('mounts only files and folders that exist', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      for (const volume of service.volumes ?? []) {
        const source = volume.split(':')[0]!;
        if (source.startsWith('.')) assert.ok(existsSync(`docker/${source}`), `${name} mounts ${source}, which exists`);
      }
    }
    assert.ok(existsSync('docker/grafana/dashboards/gateway.json'));
    assert.ok(existsSync('docker/grafana/provisioning/datasources/prometheus.yml'));
    assert.ok(existsSync('docker/grafana/provisioning/dashboards/gateway.yml'));
    assert.ok(existsSync('docker/alertmanager/alertmanager.yml'));
    // Grafana's dashboard provider reads the folder compose mounts the dashboards at.
    const provider = parse(readFileSync('docker/grafana/provisioning/dashboards/gateway.yml', 'utf8')) as {
      providers: Array<{ options: { path: string } }>;
    };
    const mounts = Object.fromEntries(
      compose.services.grafana!.volumes!.map((v) => v.split(':').slice(0, 2) as [string, string]),
    );
    assert.equal(mounts['./grafana/dashboards'], provider.providers[0]!.options.path);
    assert.equal(mounts['./grafana/provisioning'], '/etc/grafana/provisioning');
  });

  it('configures each gateway only with variables it reads, and values it accepts, with its own ROLE', () => {
    for (const [name, role] of Object.entries(GATEWAYS)) {
      const environment = compose.services[name]!.environment!;
      for (const variable of Object.keys(environment))
        assert.ok(ENVIRONMENT_VARIABLES.includes(variable), `${name}: ${variable} is a gateway setting`);
      // ${VAR:-default} substitutions resolve to their default when unset.
      const resolved = Object.fromEntries(
        Object.entries(environment).map(([k, v]) => [k, String(v).replace(/\$\{\w+:-([^}]*)\}/g, '$1')]),
      );
      const config = loadConfig(resolved);
      assert.equal(config.role, role, `${name} runs as ${role}`);
      assert.equal(new URL(config.database.url).hostname, 'postgres');
      assert.equal(new URL(config.redis.url).hostname, 'redis');
      assert.equal(config.http.host, '0.0.0.0');
      assert.equal(new URL(config.tracing.otlpEndpoint!).hostname, 'jaeger', `${name} sends traces to Jaeger`);
      // One process migrates; the API replicas wait for it.
      assert.equal(config.database.migrateOnStart, role === 'worker');
    }
  });

  it('lets Prometheus scrape every gateway with the rules loaded, and Grafana read Prometheus', () => {
    const prometheusConfig = parse(readFileSync('docker/prometheus/prometheus.yml', 'utf8')) as {
      rule_files: string[];
      alerting: { alertmanagers: Array<{ static_configs: Array<{ targets: string[] }> }> };
      scrape_configs: Array<{
        job_name: string;
        static_configs: Array<{ targets: string[]; labels?: { role?: string } }>;
      }>;
    };
    const gatewayJob = prometheusConfig.scrape_configs.find((j) => j.job_name === 'gateway')!;
    const targets = gatewayJob.static_configs.flatMap((c) => c.targets.map((t) => [t, c.labels?.role]));
    assert.deepEqual(
      targets.sort(),
      Object.entries(GATEWAYS)
        .map(([name, role]) => [`${name}:4000`, role])
        .sort(),
    );
    for (const file of prometheusConfig.rule_files)
      assert.ok(existsSync(`docker/prometheus/${file}`), `${file} exists`);
    assert.deepEqual(prometheusConfig.alerting.alertmanagers[0]!.static_configs[0]!.targets, ['alertmanager:9093']);
    const datasources = parse(readFileSync('docker/grafana/provisioning/datasources/prometheus.yml', 'utf8')) as {
      datasources: Array<{ type: string; url: string; uid: string }>;
    };
    assert.ok(datasources.datasources.some((d) => d.type === 'prometheus' && d.url === 'http://prometheus:9090'));
    const dashboard = JSON.parse(readFileSync('docker/grafana/dashboards/gateway.json', 'utf8')) as {
      panels: Array<{ type: string; datasource?: { uid: string } }>;
    };
    const uids = new Set(datasources.datasources.map((d) => d.uid));
    const panels = dashboard.panels.filter((p) => p.type !== 'row');
    assert.ok(panels.length >= 12, `${panels.length} panels`);
    for (const panel of panels) assert.ok(uids.has(panel.datasource!.uid), 'each panel reads a provisioned datasource');
  });

  it('has a Prometheus configuration promtool accepts', (t) => {
    const promtool = promtoolOrSkip(t);
    if (!promtool) return;
    assert.match(promtool('check', 'config', 'docker/prometheus/prometheus.yml'), /is valid prometheus config/);
  });
});
