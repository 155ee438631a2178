// The errors the gateway itself raises before any work; src/web/openai-errors.ts gives them OpenAI's shape.
import { AicnError, ErrorCode } from '../core/errors.ts'

/** Errors the gateway itself raises before any work. */
export const gatewayErrors = {
  missingKey: () => new AicnError(ErrorCode.PERMISSION, 'You didn\'t provide an API key. Send it as "Authorization: Bearer sk-…".', { status: 401, reason: 'invalid_api_key' }),
  badKey: () => new AicnError(ErrorCode.PERMISSION, 'Incorrect API key provided, or the key was revoked.', { status: 401, reason: 'invalid_api_key' }),
  notAllowed: (model: string) => new AicnError(ErrorCode.PERMISSION, `This key may not use the model \`${model}\`.`, { status: 403, reason: 'model_not_allowed' }),
  balance: () => new AicnError(ErrorCode.PERMISSION, 'Insufficient balance: top up this key to continue.', { status: 402, reason: 'insufficient_quota' }),
  limited: (reason: string) => new AicnError(ErrorCode.PERMISSION, `Rate limit reached (${reason}); retry later.`, { status: 429, reason: 'rate_limit_exceeded' })
}
