// Yamux window updates with hysteresis, as go-yamux, rust-yamux and py-libp2p send them.
//
// @chainsafe/libp2p-yamux 8 answers every data frame it receives with a window update, right away and on
// the same call stack that delivers the data: for a small request/response that is one more yamux frame,
// noise seal and write syscall on each side per message, on the critical path (the update goes out before
// the received bytes reach their reader), and one more read on the other side. The yamux spec leaves the
// timing to the receiver; the other implementations wait until at least half the window was consumed.
// This does the same: while a stream is established and more than half of its receive window is still
// open, the update waits. The sender can therefore never be left without credit: it always holds at least
// half a window (128 KiB or more). Opening and closing flags (SYN/ACK) and a paused stream keep the
// library's behaviour, and so does its window growth, which now measures the time between updates.
import { YamuxStream, StreamState } from '@chainsafe/libp2p-yamux/stream'

interface WindowFields { state: StreamState, recvWindow: number, recvWindowCapacity: number }

let installed = false

export function installYamuxWindowHysteresis (): void {
  if (installed) return
  installed = true
  const prototype = YamuxStream.prototype as unknown as { sendWindowUpdate: (this: WindowFields) => void }
  const sendWindowUpdate = prototype.sendWindowUpdate
  if (typeof sendWindowUpdate !== 'function') return
  prototype.sendWindowUpdate = function (this: WindowFields): void {
    if (this.state === StreamState.Established && this.recvWindowCapacity > this.recvWindow / 2) return
    sendWindowUpdate.call(this)
  }
}
