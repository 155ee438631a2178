import { test } from 'node:test'
import assert from 'node:assert/strict'
import { formatDuration, parseDuration } from '../../../src/config/index.ts'

test('parseDuration reads Go duration strings as milliseconds', () => {
  const cases: Array<[string, number]> = [
    ['180s', 180_000],
    ['1h', 3_600_000],
    ['1m30s', 90_000],
    ['1.5h', 5_400_000],
    ['300ms', 300],
    ['0', 0],
    ['-0', 0],
    ['+5s', 5000],
    ['-2s', -2000],
    ['1h2m3s4ms', 3_723_004],
    ['.5s', 500],
    ['1.s', 1000],
    ['1500us', 1.5],
    ['1µs', 0.001], // micro sign, as Go prints it
    ['1μs', 0.001], // Greek mu, which Go accepts too
    ['250ns', 0.00025],
    ['208.878448ms', 208.878448],
    ['0s', 0]
  ]
  for (const [text, ms] of cases) {
    assert.equal(parseDuration(text), ms, text)
  }
})

test('parseDuration rejects what Go rejects, naming the input', () => {
  for (const text of ['', '1', '10', 'x', 's', '.s', '1x', '1 s', ' 1s', '1s ', '--1s', '1d', '1.2.3s', '1e3s', '9999999999999h']) {
    assert.throws(() => parseDuration(text), (err: Error) => {
      assert.equal(err.message, `invalid duration ${JSON.stringify(text)}`)
      return true
    }, text)
  }
})

test('formatDuration prints like Go time.Duration.String()', () => {
  const cases: Array<[number, string]> = [
    [0, '0s'],
    [0.000123, '123ns'],
    [0.0015, '1.5µs'],
    [208.878448, '208.878448ms'],
    [1, '1ms'],
    [999.999999, '999.999999ms'],
    [1000, '1s'],
    [1500, '1.5s'],
    [60_000, '1m0s'],
    [120_000, '2m0s'],
    [90_500, '1m30.5s'],
    [3_600_000, '1h0m0s'],
    [5_400_000, '1h30m0s'],
    [90_061_001, '25h1m1.001s'],
    [-1500, '-1.5s']
  ]
  for (const [ms, text] of cases) {
    assert.equal(formatDuration(ms), text, String(ms))
  }
})

test('formatDuration and parseDuration round-trip', () => {
  for (const ms of [0.001, 1, 208.878448, 1500, 90_000, 5_400_000, -2000]) {
    assert.equal(parseDuration(formatDuration(ms)), ms)
  }
})
