import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OperationNameLabels } from '../../../src/plugins/operation-name.labels.js';

describe('OperationNameLabels', () => {
  it('keeps the first admitted names, and counts every later one as other', () => {
    const labels = new OperationNameLabels(2);
    assert.equal(labels.label('Users', true), 'Users');
    assert.equal(labels.label('Events', true), 'Events');
    assert.equal(labels.label('Stats', true), 'other');
    // Known names keep their label whatever happens later.
    assert.equal(labels.label('Users', false), 'Users');
    assert.equal(labels.label('Events', true), 'Events');
  });

  it('admits no name the caller does not vouch for (a document that did not validate)', () => {
    const labels = new OperationNameLabels(10);
    assert.equal(labels.label('Garbage1', false), 'other');
    assert.equal(labels.label('Garbage1', true), 'Garbage1');
  });

  it('calls unnamed operations anonymous and never admits what is not a GraphQL name', () => {
    const labels = new OperationNameLabels(10);
    assert.equal(labels.label(null, true), 'anonymous');
    assert.equal(labels.label(undefined, true), 'anonymous');
    assert.equal(labels.label('', true), 'anonymous');
    for (const bad of ['1abc', 'a b', 'a"}', 'x'.repeat(101), 'naïve']) assert.equal(labels.label(bad, true), 'other');
    assert.equal(labels.label('x'.repeat(100), true), 'x'.repeat(100));
  });

  it('holds at most max distinct labels however many names arrive', () => {
    const labels = new OperationNameLabels(100);
    const seen = new Set<string>();
    for (let i = 0; i < 10_000; i++) seen.add(labels.label(`Op${i}`, true));
    assert.equal(seen.size, 101);
    assert.ok(seen.has('other'));
  });
});
