// Result codes at the boundary with Go nodes. Both tables start at 1001 but the Go node's has three codes
// ours lacks (1003 Json, 1006 Rendezvous, 1019 Deprecated) and lacks two of ours, so most numbers are
// shifted (the Go node's table is in the map below; ours in src/core/errors.ts). Codes neither table knows (a model server's own) pass through.
import { ErrorCode } from '../core/errors.ts'

/** The Go node's codes (pkg/types/error.go). */
export const GoCode = {
  PARAM: 1001,
  PARSE: 1002,
  JSON: 1003,
  PROTOBUF: 1004,
  TIMEOUT: 1005,
  RENDEZVOUS: 1006,
  MODEL: 1007,
  UPLOAD: 1008,
  BUFFER: 1009,
  PERMISSION: 1010,
  UNSUPPORTED: 1011,
  HOST_INFO: 1012,
  ENCRYPT: 1013,
  DECRYPT: 1014,
  UUID: 1015,
  DATABASE: 1016,
  PROXY: 1017,
  STREAM: 1018,
  DEPRECATED: 1019,
  INTERNAL: 5000
} as const

const OURS_TO_GO = new Map<number, number>([
  [ErrorCode.PARAM, GoCode.PARAM],
  [ErrorCode.PARSE, GoCode.PARSE],
  [ErrorCode.PROTOBUF, GoCode.PROTOBUF],
  [ErrorCode.TIMEOUT, GoCode.TIMEOUT],
  // Go's "Rendezvous" is its node-discovery failure (DHT FindPeers), our ROUTING.
  [ErrorCode.ROUTING, GoCode.RENDEZVOUS],
  [ErrorCode.MODEL, GoCode.MODEL],
  // Go's "Upload" is its IPFS upload failure.
  [ErrorCode.IPFS, GoCode.UPLOAD],
  [ErrorCode.BUFFER, GoCode.BUFFER],
  [ErrorCode.PERMISSION, GoCode.PERMISSION],
  [ErrorCode.UNSUPPORTED, GoCode.UNSUPPORTED],
  [ErrorCode.HOST_INFO, GoCode.HOST_INFO],
  [ErrorCode.ENCRYPT, GoCode.ENCRYPT],
  [ErrorCode.DECRYPT, GoCode.DECRYPT],
  [ErrorCode.UUID, GoCode.UUID],
  [ErrorCode.DATABASE, GoCode.DATABASE],
  // Go answers "Not enough available and directly connected nodes" with 1017 Proxy.
  [ErrorCode.NO_NODE, GoCode.PROXY],
  [ErrorCode.STREAM, GoCode.STREAM],
  [ErrorCode.INTERNAL, GoCode.INTERNAL]
])

const GO_TO_OURS = new Map<number, number>([
  ...[...OURS_TO_GO].map(([ours, go]) => [go, ours] as [number, number]),
  // Go codes with no counterpart of their own:
  [GoCode.JSON, ErrorCode.PARSE],
  [GoCode.DEPRECATED, ErrorCode.UNSUPPORTED]
])

/** Our code → the Go node's number for the same failure. */
export function toGoCode (ourCode: number): number {
  return OURS_TO_GO.get(ourCode) ?? ourCode
}

/** A Go node's code → ours. */
export function fromGoCode (goCode: number): number {
  return GO_TO_OURS.get(goCode) ?? goCode
}
