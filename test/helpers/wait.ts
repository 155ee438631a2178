// Waiting in the unit tests for a condition that no event announces (issue 17: no sleeps that wait a
// fixed time for something to happen). The limit only turns a hang into a failure with a name; no test
// asserts on how long anything took.
import assert from 'node:assert/strict'

// Captured at load time: a test that mocks the timers (node:test mock.timers) can still wait here for
// real I/O, and a mocked Date does not stop the limit from firing.
const realSetTimeout = globalThis.setTimeout
const realClearTimeout = globalThis.clearTimeout

/** Resolves once `check()` holds; checks every few milliseconds. Fails naming `what` after `limitMs`. */
export async function waitFor (check: () => boolean, limitMs: number, what: string): Promise<void> {
  let expired = false
  const limit = realSetTimeout(() => { expired = true }, limitMs)
  try {
    while (!check()) {
      if (expired) assert.fail(`timed out waiting for ${what}`)
      await new Promise((resolve) => realSetTimeout(resolve, 10))
    }
  } finally {
    realClearTimeout(limit)
  }
}
