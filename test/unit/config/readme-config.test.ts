import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ENVIRONMENT_VARIABLES } from '../../../src/config/config.js';

describe('README configuration table', () => {
  const readme = readFileSync('README.md', 'utf8');
  const documented = [...readme.matchAll(/^\| `([A-Z0-9_]+)` \|/gm)].map((m) => m[1]);

  it('lists every variable the gateway reads, and no other', () => {
    assert.deepEqual([...documented].sort(), [...ENVIRONMENT_VARIABLES].sort());
  });

  it('opens with the start and test commands', () => {
    const opening = readme.split('\n').slice(0, 10).join('\n');
    assert.match(opening, /npm install && npm start/);
    assert.match(opening, /npm test/);
  });
});
