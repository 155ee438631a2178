// An assert.rejects predicate for our errors (src/core/errors.ts): the error is an AicnError with this code
// (and, when given, a message matching `message`).
import assert from 'node:assert/strict'
import { AicnError } from '../../src/core/errors.ts'

export function hasCode (code: number, message?: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof AicnError, `expected an AicnError, got ${String(err)}`)
    assert.equal(err.code, code, err.message)
    if (message !== undefined) assert.match(err.message, message)
    return true
  }
}
