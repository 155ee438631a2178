// Entry point for the protobuf wire types. Import from here, not from the generated files:
//
//   import { protocol, job, encodeMessage, decodeMessage } from '../proto/index.ts'
//
// * `protocol` — the Go-compatible pubsub schema (proto/aicn.proto, package `protocol`).
// * `job`      — our job stream frames (proto/job.proto, package `aicn`).
//
// Conventions of the generated code (see scripts/gen-proto.js):
// * field names are exactly the .proto names (snake_case): `msg.header.node_id`, `msg.result_message`;
// * int64/uint64 fields are plain JS numbers;
// * proto3 defaults are omitted on the wire and read back as the prototype default ('' / 0 / false / empty
//   Uint8Array / []), except `optional` fields (AIModelOfProject.available) which read back as null when absent;
// * a oneof's selected case name is in e.g. `body.data` ('req' | 'res' | undefined), `frame.frame` for JobFrame.
// * `X.encode(obj).finish()` accepts plain objects typed `X.$Properties` (`IX` is a deprecated alias of it in
//   protobufjs 8); `X.decode(bytes)` returns an instance and throws on malformed input.

import { protocol } from './aicn.js'

export { protocol } from './aicn.js'
export { aicn as job } from './job.js'

/** Thrown by the decode helpers when bytes are not a valid protobuf encoding of the expected message. */
export class ProtoDecodeError extends Error {
  constructor (what: string, cause: unknown) {
    super(`invalid ${what}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause })
    this.name = 'ProtoDecodeError'
  }
}

/** Serializes a pubsub envelope `Message` (as published on the topic, no extra framing). */
export function encodeMessage (msg: protocol.Message.$Properties): Uint8Array {
  return protocol.Message.encode(msg).finish()
}

/**
 * Parses a pubsub envelope `Message`.
 * @throws ProtoDecodeError on malformed bytes (callers map this to API error code 1003).
 */
export function decodeMessage (bytes: Uint8Array): protocol.Message {
  try {
    return protocol.Message.decode(bytes)
  } catch (err) {
    throw new ProtoDecodeError('protocol.Message', err)
  }
}
