// Errors in OpenAI's shape, `{"error":{"message","type","param","code"}}`, with the statuses of seeds
// 001/003: 400 invalid parameters, 401 key, 402 balance, 403 model not allowed, 404 model not found,
// 429 limits, 500, 502 upstream unavailable, 504 upstream timeout.
import { AicnError, ErrorCode } from '../errors.ts'

export interface OpenAiError { status: number, body: { error: { message: string, type: string, param: string | null, code: string | null } } }

export function openAiError (status: number, message: string, type: string, code: string | null = null, param: string | null = null): OpenAiError {
  return { status, body: { error: { message, type, param, code } } }
}

/** Errors the gateway itself raises before any work. */
export const gatewayErrors = {
  missingKey: () => new AicnError(ErrorCode.PERMISSION, 'You didn\'t provide an API key. Send it as "Authorization: Bearer sk-…".', { status: 401 }),
  badKey: () => new AicnError(ErrorCode.PERMISSION, 'Incorrect API key provided, or the key was revoked.', { status: 401 }),
  notAllowed: (model: string) => new AicnError(ErrorCode.PERMISSION, `This key may not use the model \`${model}\`.`, { status: 403 }),
  balance: () => new AicnError(ErrorCode.PERMISSION, 'Insufficient balance: top up this key to continue.', { status: 402 }),
  limited: (reason: string) => new AicnError(ErrorCode.PERMISSION, `Rate limit reached (${reason}); retry later.`, { status: 429 })
}

export function toOpenAiError (err: unknown): OpenAiError {
  if (!(err instanceof AicnError)) return openAiError(500, 'internal error', 'api_error')
  switch (err.status) {
    case 401: return openAiError(401, err.message, 'authentication_error', 'invalid_api_key')
    case 402: return openAiError(402, err.message, 'insufficient_quota', 'insufficient_quota')
    case 403: return openAiError(403, err.message, 'permission_error', 'model_not_allowed')
    case 429: return openAiError(429, err.message, 'rate_limit_error', 'rate_limit_exceeded')
    case 413: return openAiError(413, err.message, 'invalid_request_error', 'request_too_large')
  }
  if (err.code === ErrorCode.NO_NODE && err.status === 404) return openAiError(404, err.message, 'invalid_request_error', 'model_not_found', 'model')
  if (err.code === ErrorCode.PARAM || err.code === ErrorCode.PARSE) return openAiError(400, err.message, 'invalid_request_error')
  if (err.code === ErrorCode.TIMEOUT) return openAiError(504, err.message, 'api_error', 'upstream_timeout')
  if (err.status >= 400 && err.status < 500) return openAiError(err.status, err.message, 'invalid_request_error')
  if (err.code === ErrorCode.INTERNAL) return openAiError(500, err.message, 'api_error')
  return openAiError(502, err.message, 'api_error', 'upstream_unavailable')
}
