// Identify's announced protocol version, set on the service's private `host` record.
//
// @libp2p/identify 4 takes the protocol version only from its `protocolPrefix` option, which also renames
// the protocol itself (`/<prefix>/id/1.0.0`). The Go node announces `aicn/0.0.1` over the standard
// `/ipfs/id/1.0.0` (docs/protocols.md, "identify"), so we keep the standard protocol and set the version
// directly, before the service starts.

/** The protocol version every aicn node announces over identify. */
export const PROTOCOL_VERSION = 'aicn/0.0.1'

/** Wraps an identify service factory so that the service announces PROTOCOL_VERSION. */
export function withProtocolVersion<C, T> (factory: (components: C) => T): (components: C) => T {
  return (components) => {
    const service = factory(components) as { host?: { protocolVersion: string } }
    if (service.host != null) service.host.protocolVersion = PROTOCOL_VERSION
    return service as T
  }
}
