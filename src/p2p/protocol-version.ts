// The identify protocol version every aicn and Go node announces (reference §5). Its own file so that the
// API's early listener (src/api/early.ts) can name it without loading libp2p.
export const PROTOCOL_VERSION = 'aicn/0.0.1'
