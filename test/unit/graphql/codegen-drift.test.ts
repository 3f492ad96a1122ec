import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { generate, loadContext } from '@graphql-codegen/cli';

describe('test/generated (codegen.yml)', () => {
  it('matches what graphql-codegen generates from schema/schema.graphql (run `npm run codegen` after changing either)', async () => {
    const context = await loadContext('codegen.yml');
    context.updateConfig({ silent: true });
    const outputs = (await generate(context, false)) as Array<{ filename: string; content: string }>;
    assert.ok(outputs.length > 0);
    for (const { filename, content } of outputs) {
      assert.equal(await readFile(filename, 'utf8'), content, `${filename} is out of date: run \`npm run codegen\``);
    }
  });
});
