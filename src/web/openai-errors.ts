// Errors in OpenAI's shape, `{"error":{"message","type","param","code"}}`, with the statuses OpenAI-style
// gateways use (README.md, "OpenAI-compatible gateway"): 400 invalid parameters, 401 key, 402 balance, 403 model not allowed, 404 model not found,
// 429 limits, 500, 502 upstream unavailable, 504 upstream timeout. Every answer under /v1 and /api/v1
// that is an error takes this shape (src/api/errors.ts), whichever layer raised it.
import { AicnError, ErrorCode } from '../core/errors.ts'

export interface OpenAiError { status: number, body: { error: { message: string, type: string, param: string | null, code: string | null } } }

export function openAiError (status: number, message: string, type: string, code: string | null = null, param: string | null = null): OpenAiError {
  return { status, body: { error: { message, type, param, code } } }
}

export function toOpenAiError (err: unknown): OpenAiError {
  if (!(err instanceof AicnError)) return openAiError(500, 'internal error', 'api_error')
  const code = err.reason ?? null
  switch (err.status) {
    case 401: return openAiError(401, err.message, 'authentication_error', code ?? 'invalid_api_key')
    case 402: return openAiError(402, err.message, 'insufficient_quota', code ?? 'insufficient_quota')
    case 403: return openAiError(403, err.message, 'permission_error', code)
    case 429: return openAiError(429, err.message, 'rate_limit_error', code ?? 'rate_limit_exceeded')
    case 413: return openAiError(413, err.message, 'invalid_request_error', 'request_too_large')
  }
  if (err.code === ErrorCode.NO_NODE && err.status === 404) return openAiError(404, err.message, 'invalid_request_error', 'model_not_found', 'model')
  if (err.status >= 400 && err.status < 500) return openAiError(err.status, err.message, 'invalid_request_error', code)
  if (err.code === ErrorCode.TIMEOUT) return openAiError(504, err.message, 'api_error', 'upstream_timeout')
  if (err.code === ErrorCode.INTERNAL) return openAiError(500, err.message, 'api_error')
  return openAiError(502, err.message, 'api_error', code ?? 'upstream_unavailable')
}
