import semver from 'semver';
import { describe, expect, it } from 'vitest';
import { isCanonicalVersion, isPlainLowerBound, satisfiesLowerBound } from '../../lib/package/semver-lite.ts';
import { Draw, seededRandom } from '../helpers/random.ts';

/** Version-like strings: mostly well-formed, often one character or one part off. */
class VersionDraw extends Draw {
  number(): string {
    if (this.chance(0.85)) return this.pick(['0', '1', '7', '12', '17', '30']);
    return this.pick(['01', '00', '9007199254740991', '9007199254740992', '99999999999999999999', '']);
  }
  identifier(): string {
    if (this.chance(0.7)) return this.pick(['rc', 'rc1', '1', '0', 'alpha-2', '-', '0a']);
    return this.pick(['01', 'x.y', '', 'beta_1', 'ü', '99999999999999999999']);
  }
  version(): string {
    let v = `${this.number()}.${this.number()}.${this.number()}`;
    if (this.chance(0.1)) v = `${this.number()}.${this.number()}`;
    if (this.chance(0.3)) {
      const ids = Array.from({ length: this.int(1, 3) }, () => this.identifier());
      v += `-${ids.join('.')}`;
    }
    if (this.chance(0.1)) v += `+${this.pick(['build', 'b.1', '001'])}`;
    if (this.chance(0.1)) v = `${this.pick(['v', ' ', '=', 'V'])}${v}`;
    if (this.chance(0.05)) v += this.pick([' ', '\n', '.', '-']);
    if (this.chance(0.02)) v = `${v}-${'a'.repeat(this.int(200, 300))}`;
    return v;
  }
  range(): string {
    const op = this.chance(0.5) ? this.pick(['>=', '>']) : this.pick(['<', '^', '~', '', '=', '>= ', '<=']);
    const v = this.chance(0.1) ? `${this.number()}.${this.number()}` : this.version();
    return this.chance(0.1) ? `${op}${v} <2.0.0` : `${op}${v}`;
  }
}

describe('semver-lite against semver', () => {
  const draw = new VersionDraw(seededRandom(20261127));
  const versions = Array.from({ length: 20_000 }, () => draw.version());
  const ranges = Array.from({ length: 5_000 }, () => draw.range());

  it('isCanonicalVersion(v) is semver.valid(v) === v', () => {
    let canonical = 0;
    for (const v of versions) {
      const expected = semver.valid(v) === v;
      expect({ v, got: isCanonicalVersion(v) }).toEqual({ v, got: expected });
      if (expected) canonical++;
    }
    // The generator must reach both answers often, or the comparison proves little.
    expect(canonical).toBeGreaterThan(2_000);
    expect(versions.length - canonical).toBeGreaterThan(2_000);
  });

  it('a plain lower bound is always a valid semver range', () => {
    let vouched = 0;
    for (const r of ranges) {
      if (isPlainLowerBound(r) === undefined) continue;
      vouched++;
      expect({ r, valid: semver.validRange(r) !== null }).toEqual({ r, valid: true });
    }
    expect(vouched).toBeGreaterThan(200);
  });

  it('satisfiesLowerBound answers as semver.satisfies with prereleases included, or not at all', () => {
    let answered = 0;
    for (const r of ranges) {
      for (const v of versions.slice(0, 40)) {
        const fast = satisfiesLowerBound(v, r);
        if (fast === undefined) continue;
        answered++;
        expect({ v, r, fast }).toEqual({ v, r, fast: semver.satisfies(v, r, { includePrerelease: true }) });
      }
    }
    expect(answered).toBeGreaterThan(1_000);
  });

  it('answers like semver right at each bound', () => {
    for (const range of ['>=1.17.0', '>1.17.0', '>=1.17', '>=1', '>0.0.0', '>=0.0.0']) {
      for (const v of [
        '1.16.9',
        '1.16.99',
        '1.17.0',
        '1.17.1',
        '1.18.0',
        '0.9.9',
        '1.0.0',
        '2.0.0',
        '0.0.0',
        '0.0.1',
      ]) {
        expect({ v, range, fast: satisfiesLowerBound(v, range) }).toEqual({
          v,
          range,
          fast: semver.satisfies(v, range, { includePrerelease: true }),
        });
      }
    }
  });

  it("answers the ranges maap pack writes for the installed runtime's versions", () => {
    expect(satisfiesLowerBound('1.30.0', '>=1.17.0')).toBe(true);
    expect(satisfiesLowerBound('1.17.0', '>=1.17.0')).toBe(true);
    expect(satisfiesLowerBound('1.17.0', '>1.17.0')).toBe(false);
    expect(satisfiesLowerBound('1.16.9', '>=1.17.0')).toBe(false);
    expect(satisfiesLowerBound('2.0.0', '>1.22.0')).toBe(true);
    // Not a plain lower bound, or not a release: semver decides.
    expect(satisfiesLowerBound('1.30.0', '^1.17.0')).toBeUndefined();
    expect(satisfiesLowerBound('1.30.0-dev', '>=1.17.0')).toBeUndefined();
    expect(satisfiesLowerBound('1.17.0', '>=1.17')).toBe(true);
    expect(satisfiesLowerBound('1.16.3', '>=1')).toBe(true);
    expect(satisfiesLowerBound('0.9.0', '>=1')).toBe(false);
    expect(isPlainLowerBound('>1.17')).toBeUndefined(); // semver reads it as >=1.18.0: left to semver
  });
});
