// Names that arrive from peers (project, model, cid, request id, content type) are checked where they
// enter, on the job protocol and the chat-proxy tunnel, before they reach a model call, a response header
// (X-AICN-CID), a heartbeat or a log. A cid with CR LF once made a response header throw after the
// model's busy counter was taken, and the counter leaked into the heartbeats (issue 19).

/** Longest project, model or cid, as the HTTP API and the local registry allow (src/registry/local.ts). */
export const MAX_NAME_CHARS = 256
/** Longest content type or request id. */
export const MAX_TOKEN_CHARS = 256

// Any control character (C0, DEL, C1) or line/paragraph separator.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/
// What a header value may carry: visible ASCII, space and Latin-1 letters (Node refuses anything above
// U+00FF and control characters; a Go node's cid may be any string, and an existing test sends "c 1/ü").
const HEADER_SAFE = /^[\u0020-\u007e\u00a0-\u00ff]*$/

/** Why `value` is not a usable project or model name; undefined when it is. */
export function badName (what: string, value: string, required = true): string | undefined {
  if (value === '') return required ? `${what} is empty` : undefined
  if (value.length > MAX_NAME_CHARS) return `${what} is longer than ${MAX_NAME_CHARS} characters`
  if (CONTROL.test(value)) return `${what} contains a control character`
  return undefined
}

/** Why `value` is not a usable cid, request id or content type (they go into headers); undefined when
 * it is. */
export function badToken (what: string, value: string, maxChars = MAX_TOKEN_CHARS): string | undefined {
  if (value.length > maxChars) return `${what} is longer than ${maxChars} characters`
  if (!HEADER_SAFE.test(value)) return `${what} contains a character that cannot go into a header`
  return undefined
}

/** The first problem among a job's names, for an error answer; undefined when all are fine. */
export function badJobNames (names: { project: string, model: string, cid: string, contentType?: string, requestId?: string }): string | undefined {
  return badName('project', names.project) ??
    badName('model', names.model) ??
    badToken('cid', names.cid, MAX_NAME_CHARS) ??
    (names.contentType === undefined ? undefined : badToken('content type', names.contentType)) ??
    (names.requestId === undefined ? undefined : badToken('request id', names.requestId))
}
