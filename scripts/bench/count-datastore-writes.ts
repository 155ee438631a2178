// Preloaded into a daemon by scripts/bench/peer-store-writes.ts (`node --import THIS aicn daemon …`): counts
// the writes that reach the peer store's LevelDB (src/node/node.ts opens it; src/p2p/host.ts hands it to
// libp2p) and, once a second, writes the counts as JSON to the file named by AICN_WRITE_COUNT_FILE plus
// the daemon's pid. Not part of the daemon: a measuring aid only.
import { writeFileSync } from 'node:fs'
import { LevelDatastore } from 'datastore-level'
import type { Key } from 'interface-datastore'

const file = process.env.AICN_WRITE_COUNT_FILE
if (file !== undefined && file !== '') {
  const counts: Record<string, number> = {}
  const count = (key: Key): void => {
    // the first path segment, e.g. /peers, /dht: enough to tell the peer store from the DHT's records
    const kind = '/' + (key.toString().split('/')[1] ?? '')
    counts[kind] = (counts[kind] ?? 0) + 1
  }
  const put = LevelDatastore.prototype.put
  LevelDatastore.prototype.put = async function (this: LevelDatastore, key, value, options) {
    count(key)
    return await put.call(this, key, value, options)
  }
  const batch = LevelDatastore.prototype.batch
  LevelDatastore.prototype.batch = function (this: LevelDatastore) {
    const b = batch.call(this)
    const bPut = b.put.bind(b)
    b.put = (key, value) => { count(key); bPut(key, value) }
    return b
  }
  setInterval(() => { writeFileSync(`${file}.${process.pid}`, JSON.stringify(counts)) }, 1000).unref()
}
