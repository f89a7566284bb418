import { describe, expect, it } from 'vitest';
import { illFormedUtf8At } from '../../lib/serving/app.ts';
import { seededRandom } from '../helpers/random.ts';

const strict = new TextDecoder('utf-8', { fatal: true });
const at = (...bytes: number[]) => illFormedUtf8At(new Uint8Array(bytes));

describe('illFormedUtf8At (where the request body stops being UTF-8)', () => {
  it('finds nothing in well-formed text: ASCII, 2-, 3- and 4-byte sequences, the extremes', () => {
    expect(illFormedUtf8At(Buffer.from('{"a":"é€😀\u{10ffff}\ud7ff\ue000"}'))).toBe(-1);
    expect(at()).toBe(-1);
  });
  it('points at the start of the first ill-formed sequence', () => {
    expect(at(0x41, 0x80)).toBe(1); // a lone continuation byte
    expect(at(0x41, 0xc0, 0x80)).toBe(1); // overlong NUL
    expect(at(0xc1, 0xbf)).toBe(0); // overlong
    expect(at(0xe0, 0x80, 0x80)).toBe(0); // overlong 3-byte
    expect(at(0x41, 0x42, 0xed, 0xa0, 0x80)).toBe(2); // a surrogate, U+D800
    expect(at(0xf0, 0x80, 0x80, 0x80)).toBe(0); // overlong 4-byte
    expect(at(0xf4, 0x90, 0x80, 0x80)).toBe(0); // above U+10FFFF
    expect(at(0xf5, 0x80, 0x80, 0x80)).toBe(0);
    expect(at(0x41, 0xe2, 0x82)).toBe(1); // cut off at the end
    expect(at(0xe2, 0x82, 0x41)).toBe(0); // cut off by ASCII
    expect(at(0xff)).toBe(0);
  });
  it('agrees with a strict TextDecoder on random bytes', () => {
    const random = seededRandom(7);
    for (let n = 0; n < 20_000; n++) {
      const bytes = new Uint8Array(1 + Math.floor(random() * 12));
      for (let i = 0; i < bytes.length; i++) {
        // Mostly bytes that start or continue multi-byte sequences, where the edge cases are.
        bytes[i] = random() < 0.2 ? Math.floor(random() * 0x80) : 0x80 + Math.floor(random() * 0x80);
      }
      let valid = true;
      try {
        strict.decode(bytes);
      } catch {
        valid = false;
      }
      const found = illFormedUtf8At(bytes);
      expect(found === -1, `${Buffer.from(bytes).toString('hex')}`).toBe(valid);
      if (found >= 0) {
        // Everything before it is well-formed.
        expect(() => strict.decode(bytes.subarray(0, found))).not.toThrow();
      }
    }
  });
});
