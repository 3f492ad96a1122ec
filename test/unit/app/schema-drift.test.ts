import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { SCHEMA_FILE, buildGatewaySchema, printGatewaySchema } from '../../../src/app/schema.js';

describe('schema/schema.graphql', () => {
  it('is exactly what the type-graphql classes emit (run `npm run schema` after changing them)', async () => {
    const committed = await readFile(SCHEMA_FILE, 'utf8');
    const emitted = printGatewaySchema(await buildGatewaySchema());
    assert.equal(committed, emitted, 'schema/schema.graphql is out of date: run `npm run schema` and commit it');
  });

  it('carries the contract names: viewer, the DateTime and JSON scalars, the key mutations', async () => {
    const sdl = printGatewaySchema(await buildGatewaySchema());
    assert.match(sdl, /type Query \{[^}]*viewer: Viewer!/s);
    assert.match(sdl, /type Viewer \{[^}]*keyName: String![^}]*scopes: \[String!\]![^}]*tenant: String!/s);
    assert.match(sdl, /scalar DateTime/);
    assert.match(sdl, /scalar JSON/);
    // maxOperationCost is optional: the two-argument call clients rely on still works.
    assert.match(sdl, /createApiKey\((maxOperationCost: Int, )?name: String!, scopes: \[String!\]!\): CreatedApiKey!/);
    assert.match(sdl, /revokeApiKey\(id: ID!\): ApiKey!/);
  });
});
