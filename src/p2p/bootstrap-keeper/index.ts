// The bootstrap keeper as a libp2p service (bootstrap-keeper.ts): from the node's start until just
// before it stops, the bootstrap peers this node is not connected to are dialled again every 30 s.
//
//   services: { bootstrapKeeper: bootstrapKeeper({ peers, log }) }
import { BootstrapKeeper, type BootstrapKeeperComponents, type BootstrapKeeperInit } from './bootstrap-keeper.ts'

export { BootstrapKeeper, type BootstrapKeeperComponents, type BootstrapKeeperInit } from './bootstrap-keeper.ts'

export function bootstrapKeeper (init: BootstrapKeeperInit): (components: BootstrapKeeperComponents) => BootstrapKeeper {
  return (components) => new BootstrapKeeper(components, init)
}
