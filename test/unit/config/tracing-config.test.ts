import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../../src/config/config.js';

describe('tracing and operation-log settings', () => {
  it('trace everything, export nothing and log operations by default', () => {
    const config = loadConfig({});
    assert.deepEqual(config.tracing, {
      enabled: true,
      otlpEndpoint: undefined,
      serviceName: 'analytics-gateway',
      sampleRatio: 1,
    });
    assert.deepEqual(config.operationLog, { enabled: true });
  });

  it('reads each variable', () => {
    const config = loadConfig({
      TRACING_ENABLED: 'false',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
      OTEL_SERVICE_NAME: 'gateway-eu',
      TRACE_SAMPLE_RATIO: '0.25',
      LOG_OPERATIONS: 'off',
    });
    assert.deepEqual(config.tracing, {
      enabled: false,
      otlpEndpoint: 'http://collector:4318',
      serviceName: 'gateway-eu',
      sampleRatio: 0.25,
    });
    assert.equal(config.operationLog.enabled, false);
  });

  it('refuses a ratio outside 0..1 and an endpoint that is not an http(s) URL, naming both', () => {
    assert.throws(
      () => loadConfig({ TRACE_SAMPLE_RATIO: '1.5', OTEL_EXPORTER_OTLP_ENDPOINT: 'grpc://collector:4317' }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.problems.some((p) => p.startsWith('TRACE_SAMPLE_RATIO')) &&
        err.problems.some((p) => p.startsWith('OTEL_EXPORTER_OTLP_ENDPOINT')),
    );
  });
});
