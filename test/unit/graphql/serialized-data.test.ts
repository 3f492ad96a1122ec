import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { serializedData, spliceSerializedData } from '../../../src/graphql/serialized-data.js';

describe('serialized data in a response', () => {
  it('puts each stored text where its placeholder was serialized, batches included', () => {
    const first = serializedData('{"timeseries":[{"count":1}]}');
    const second = serializedData('{"eventTypes":[]}');
    const response = JSON.stringify([
      { data: first.placeholder, extensions: { cost: { actualQueryCost: 1 } } },
      { data: second.placeholder },
    ]);
    const sent = spliceSerializedData(response, [first, second]);
    assert.deepEqual(JSON.parse(sent), [
      { data: { timeseries: [{ count: 1 }] }, extensions: { cost: { actualQueryCost: 1 } } },
      { data: { eventTypes: [] } },
    ]);
  });

  it('leaves a client’s look-alike value alone: the placeholder carries a per-process nonce', () => {
    const piece = serializedData('{"x":1}');
    const forged = JSON.stringify({ data: { __serializedData: 'guess.1' } });
    assert.equal(spliceSerializedData(forged, [piece]), forged);
    assert.notEqual(serializedData('{}').marker, piece.marker);
  });
});
