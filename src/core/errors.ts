// The one table of errors. Codes and meanings follow the API contract (the Go node's API, README.md "Errors");
// HTTP statuses are ours, chosen so that a client can act on the status alone.

export const ErrorCode = {
  PARAM: 1001,
  PARSE: 1002,
  PROTOBUF: 1003,
  TIMEOUT: 1004,
  ROUTING: 1005,
  MODEL: 1006,
  IPFS: 1007,
  BUFFER: 1008,
  PERMISSION: 1009,
  UNSUPPORTED: 1010,
  HOST_INFO: 1011,
  ENCRYPT: 1012,
  DECRYPT: 1013,
  UUID: 1014,
  DATABASE: 1015,
  NO_NODE: 1016,
  STREAM: 1017,
  INTERNAL: 5000
} as const

export type ErrorCodeValue = typeof ErrorCode[keyof typeof ErrorCode]

interface ErrorKind { status: number, message: string }

const kinds: Record<ErrorCodeValue, ErrorKind> = {
  [ErrorCode.PARAM]: { status: 400, message: 'Parameter error' },
  [ErrorCode.PARSE]: { status: 400, message: 'JSON parsing error' },
  [ErrorCode.PROTOBUF]: { status: 502, message: 'Protobuf serialization error' },
  [ErrorCode.TIMEOUT]: { status: 504, message: 'Timeout' },
  [ErrorCode.ROUTING]: { status: 404, message: 'Node discovery and routing error' },
  [ErrorCode.MODEL]: { status: 502, message: 'AI model error' },
  [ErrorCode.IPFS]: { status: 502, message: 'IPFS upload/download error' },
  [ErrorCode.BUFFER]: { status: 413, message: 'Buffer error' },
  [ErrorCode.PERMISSION]: { status: 403, message: 'Permission error' },
  [ErrorCode.UNSUPPORTED]: { status: 404, message: 'Not supported' },
  [ErrorCode.HOST_INFO]: { status: 500, message: 'Failed to obtain machine information' },
  [ErrorCode.ENCRYPT]: { status: 500, message: 'Encryption failed' },
  [ErrorCode.DECRYPT]: { status: 500, message: 'Decryption failed' },
  [ErrorCode.UUID]: { status: 500, message: 'UUID error' },
  [ErrorCode.DATABASE]: { status: 500, message: 'Database error' },
  [ErrorCode.NO_NODE]: { status: 503, message: 'No node serves this model' },
  [ErrorCode.STREAM]: { status: 502, message: 'Stream error' },
  [ErrorCode.INTERNAL]: { status: 500, message: 'Internal error' }
}

/** An error that carries the API's error code and the HTTP status to answer with. The code is one of
 * ours, or one a model server or a remote node reported, which is passed through. */
export class AicnError extends Error {
  readonly code: number
  readonly status: number
  /** A machine-readable reason where the code is too coarse (OpenAI's error `code`, e.g. "model_not_allowed"). */
  readonly reason?: string
  /** Headers the answer must carry (e.g. the rate-limit headers of a 429). */
  headers?: Record<string, string>

  constructor (code: ErrorCodeValue | number, message?: string, options?: { status?: number, cause?: unknown, reason?: string, headers?: Record<string, string> }) {
    super(message ?? defaultMessage(code), { cause: options?.cause })
    this.name = 'AicnError'
    this.code = code
    this.status = options?.status ?? statusForCode(code)
    this.reason = options?.reason
    this.headers = options?.headers
  }
}

export function isAicnError (err: unknown): err is AicnError {
  return err instanceof AicnError
}

/** The default message for a code, e.g. for codes that arrive over the wire without text. */
export function defaultMessage (code: number): string {
  return (kinds as Record<number, ErrorKind | undefined>)[code]?.message ?? 'Unknown error'
}

/** The HTTP status for a code that may come from a remote node. */
export function statusForCode (code: number): number {
  return (kinds as Record<number, ErrorKind | undefined>)[code]?.status ?? 500
}

/** Turns anything thrown into an AicnError, keeping the original as the cause. */
export function toAicnError (err: unknown): AicnError {
  if (isAicnError(err)) return err
  const message = err instanceof Error ? err.message : String(err)
  return new AicnError(ErrorCode.INTERNAL, message, { cause: err })
}

/** A configuration problem. The message names the key and says what is wrong, e.g.
 * `Swarm.ConnMgr.Type: must be "basic" or "none"`. */
export class ConfigError extends Error {
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'ConfigError'
  }
}

/** A problem the CLI reports as one line (what is wrong and how to fix it), exiting non-zero. */
export class UsageError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'UsageError'
  }
}
