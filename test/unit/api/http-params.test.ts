import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { AicnError, ErrorCode } from '../../../src/core/errors.ts'
import { Params } from '../../../src/web/params.ts'
import { asObject, MAX_JSON_DEPTH } from '../../../src/api/body.ts'
import { ok, raw, render, errorBody } from '../../../src/web/reply.ts'

function paramError (message: string): (err: unknown) => boolean {
  return (err: unknown) => err instanceof AicnError && err.code === ErrorCode.PARAM && err.status === 400 && err.message === message
}

describe('Params', () => {
  it('matches body keys case-insensitively, body winning over the query', () => {
    const p = Params.from({ node_id: 'from-query', Extra: 'q' }, { NODE_ID: 'from-body' })
    assert.equal(p.string('node_id'), 'from-body')
    assert.equal(p.string('Node_Id'), 'from-body')
    assert.equal(p.string('extra'), 'q')
    assert.deepEqual(p.body, { NODE_ID: 'from-body' })
  })

  it('takes the last of keys repeated in different cases, like Go', () => {
    assert.equal(Params.from({}, { model: 'a', Model: 'b' }).string('MODEL'), 'b')
  })

  it('takes the first of a repeated query parameter', () => {
    assert.equal(Params.from({ a: ['1', '2'] }, undefined).string('a'), '1')
  })

  it('reports missing and mistyped strings', () => {
    const p = Params.from({}, { n: 5, long: 'abcdef' })
    assert.throws(() => p.string('node_id', { required: true }), paramError('missing field "node_id"'))
    assert.throws(() => p.string('n'), paramError('field "n" must be a string'))
    assert.throws(() => p.string('long', { maxLength: 3 }), paramError('field "long" must be at most 3 characters'))
    assert.equal(p.string('absent'), '')
    assert.equal(p.string('absent', { default: 'd' }), 'd')
    assert.equal(p.optionalString('absent'), undefined)
    assert.equal(p.optionalString('LONG'), 'abcdef')
  })

  it('treats JSON null as absent', () => {
    const p = Params.from({}, { a: null })
    assert.equal(p.has('a'), false)
    assert.throws(() => p.string('a', { required: true }), paramError('missing field "a"'))
  })

  it('reads integers from JSON numbers and numeric query strings', () => {
    const p = Params.from({ q: '42', neg: '-3', bad: '4x' }, { n: 7, f: 1.5, s: true })
    assert.equal(p.int('q'), 42)
    assert.equal(p.int('neg'), -3)
    assert.equal(p.int('N'), 7)
    assert.equal(p.int('absent', { default: 9 }), 9)
    assert.throws(() => p.int('bad'), paramError('field "bad" must be an integer'))
    assert.throws(() => p.int('f'), paramError('field "f" must be an integer'))
    assert.throws(() => p.int('s'), paramError('field "s" must be an integer'))
    assert.throws(() => p.int('absent', { required: true }), paramError('missing field "absent"'))
    assert.throws(() => p.int('n', { min: 10 }), paramError('field "n" must be at least 10'))
    assert.throws(() => p.int('n', { max: 5 }), paramError('field "n" must be at most 5'))
    assert.throws(() => p.int('n', { min: 1, max: 5 }), paramError('field "n" must be between 1 and 5'))
  })

  it('reads booleans', () => {
    const p = Params.from({ a: 'true', b: '0', c: 'yes' }, { d: false, e: 1 })
    assert.equal(p.bool('a'), true)
    assert.equal(p.bool('b'), false)
    assert.equal(p.bool('d'), false)
    assert.equal(p.bool('e'), true)
    assert.equal(p.bool('absent'), false)
    assert.equal(p.bool('absent', { default: true }), true)
    assert.throws(() => p.bool('c'), paramError('field "c" must be true or false'))
  })

  it('returns raw JSON values and ignores prototype-looking keys', () => {
    const p = Params.from({}, JSON.parse('{"Messages":[{"role":"user"}],"__proto__":"x"}'))
    assert.deepEqual(p.raw('messages'), [{ role: 'user' }])
    assert.equal(p.raw('__proto__'), 'x')
    assert.equal(p.has('constructor'), false)
  })
})

describe('JSON body objects', () => {
  it('accepts objects; an empty body and null are no body', () => {
    assert.deepEqual(asObject({ a: 1 }), { a: 1 })
    assert.equal(asObject(''), undefined)
    assert.equal(asObject(null), undefined)
    assert.equal(asObject(undefined), undefined)
  })

  it('refuses non-objects with code 1002', () => {
    for (const body of [[1], 'x', 3, true]) {
      assert.throws(() => asObject(body), (err: unknown) => err instanceof AicnError && err.code === ErrorCode.PARSE && err.message === 'JSON body must be an object')
    }
  })

  it('refuses bodies nested deeper than the limit with 400/1002', () => {
    const nest = (depth: number): unknown => JSON.parse('{"a":'.repeat(depth) + '1' + '}'.repeat(depth))
    assert.throws(() => asObject(nest(5000)), (err: any) => err.code === 1002 && /nested deeper/.test(err.message))
    assert.equal(typeof asObject(nest(MAX_JSON_DEPTH - 1)), 'object')
  })
})

describe('replies', () => {
  it('renders the envelope, leaving data out when undefined', () => {
    assert.deepEqual(JSON.parse(render(ok({ a: 1 })).body), { code: 0, message: 'ok', data: { a: 1 } })
    assert.deepEqual(JSON.parse(render(ok()).body), { code: 0, message: 'ok' })
    assert.deepEqual(JSON.parse(render(ok(null, 'done')).body), { code: 0, message: 'done', data: null })
    assert.equal(render(raw(['a'], 201)).status, 201)
    assert.deepEqual(errorBody(new AicnError(ErrorCode.TIMEOUT)), { code: 1004, message: 'Timeout' })
  })
})
