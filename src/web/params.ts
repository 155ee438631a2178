// A request's parameters: the query string merged with the JSON body object, the body winning.
// Keys match case-insensitively because the Go node decoded bodies with encoding/json, which does, and clients
// written against it send e.g. "Node_ID" or "model"/"Model" interchangeably. When a body repeats a key in
// different cases the last one wins, as in Go. A JSON null counts as absent (Go leaves the field at zero).
import { AicnError, ErrorCode } from '../core/errors.ts'

type QueryValue = string | string[] | undefined

export interface StringOptions {
  required?: boolean
  default?: string
  maxLength?: number
  /** An identifier (node id, project, model, cid): no control characters, so it can never break a header
   * or a log line (a CRLF in a cid once did both). */
  identifier?: boolean
}

const CONTROL = /[\u0000-\u001f\u007f]/
export interface IntOptions { required?: boolean, default?: number, min?: number, max?: number }
export interface BoolOptions { default?: boolean }

const INTEGER = /^[+-]?\d+$/

function paramError (message: string): AicnError {
  return new AicnError(ErrorCode.PARAM, message)
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

export class Params {
  // A Map, not an object, so that keys like "__proto__" or "constructor" are just keys.
  readonly #values: Map<string, unknown>
  readonly #body: unknown

  private constructor (values: Map<string, unknown>, body: unknown) {
    this.#values = values
    this.#body = body
  }

  static from (query: Record<string, QueryValue>, body: unknown): Params {
    const values = new Map<string, unknown>()
    for (const [key, value] of Object.entries(query)) {
      if (value === undefined) continue
      // A repeated query parameter: the first one counts, like gin's form binding.
      const first = Array.isArray(value) ? value[0] : value
      if (first !== undefined) values.set(key.toLowerCase(), first)
    }
    if (isPlainObject(body)) {
      for (const [key, value] of Object.entries(body)) values.set(key.toLowerCase(), value)
    }
    return new Params(values, body)
  }

  /** The whole parsed JSON body, undefined when the request had none. */
  get body (): unknown {
    return this.#body
  }

  has (name: string): boolean {
    return this.#lookup(name) !== undefined
  }

  /** The raw JSON value (objects, arrays, numbers…) or the query string; undefined when absent. */
  raw (name: string): unknown {
    return this.#lookup(name)
  }

  string (name: string, options: StringOptions = {}): string {
    const value = this.#lookup(name)
    if (value === undefined) {
      if (options.default !== undefined) return options.default
      if (options.required === true) throw paramError(`missing field "${name}"`)
      return ''
    }
    if (typeof value !== 'string') throw paramError(`field "${name}" must be a string`)
    if (options.maxLength !== undefined && value.length > options.maxLength) {
      throw paramError(`field "${name}" must be at most ${options.maxLength} characters`)
    }
    if (options.identifier === true && CONTROL.test(value)) throw paramError(`field "${name}" must not contain control characters`)
    return value
  }

  optionalString (name: string): string | undefined {
    return this.has(name) ? this.string(name) : undefined
  }

  /** Accepts JSON integers and integer strings (query values are always strings). */
  int (name: string, options: IntOptions = {}): number {
    const value = this.#lookup(name)
    let n: number
    if (value === undefined) {
      if (options.default !== undefined) return options.default
      if (options.required === true) throw paramError(`missing field "${name}"`)
      return 0
    } else if (typeof value === 'number') {
      n = value
    } else if (typeof value === 'string' && INTEGER.test(value.trim())) {
      n = Number(value.trim())
    } else {
      throw paramError(`field "${name}" must be an integer`)
    }
    if (!Number.isSafeInteger(n)) throw paramError(`field "${name}" must be an integer`)
    if (options.min !== undefined && n < options.min) throw paramError(rangeMessage(name, options))
    if (options.max !== undefined && n > options.max) throw paramError(rangeMessage(name, options))
    return n
  }

  bool (name: string, options: BoolOptions = {}): boolean {
    const value = this.#lookup(name)
    if (value === undefined) return options.default ?? false
    if (value === true || value === 'true' || value === '1' || value === 1) return true
    if (value === false || value === 'false' || value === '0' || value === 0) return false
    throw paramError(`field "${name}" must be true or false`)
  }

  #lookup (name: string): unknown {
    const value = this.#values.get(name.toLowerCase())
    return value === null ? undefined : value
  }
}

function rangeMessage (name: string, { min, max }: IntOptions): string {
  if (min !== undefined && max !== undefined) return `field "${name}" must be between ${min} and ${max}`
  if (min !== undefined) return `field "${name}" must be at least ${min}`
  return `field "${name}" must be at most ${String(max)}`
}
