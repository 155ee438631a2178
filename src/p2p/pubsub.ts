// The part of the pubsub API that aicn uses; both @libp2p/gossipsub and @libp2p/floodsub provide it,
// so the rest of the code does not care which router the config picked.
import type { PeerId, TypedEventTarget } from '@libp2p/interface'

export interface PubSubMessage {
  type: 'signed' | 'unsigned'
  from?: PeerId
  topic: string
  data: Uint8Array
  sequenceNumber?: bigint
}

export type TopicValidatorResult = 'accept' | 'ignore' | 'reject'

export interface SubscriptionChange {
  peerId: PeerId
  subscriptions: Array<{ topic: string, subscribe: boolean }>
}

export interface PubSubEvents {
  message: CustomEvent<PubSubMessage>
  'subscription-change': CustomEvent<SubscriptionChange>
}

export interface PubSub extends TypedEventTarget<PubSubEvents> {
  topicValidators: Map<string, (peer: PeerId, message: PubSubMessage) => TopicValidatorResult | Promise<TopicValidatorResult>>
  getPeers: () => PeerId[]
  getTopics: () => string[]
  subscribe: (topic: string) => void
  unsubscribe: (topic: string) => void
  getSubscribers: (topic: string) => PeerId[]
  publish: (topic: string, data?: Uint8Array) => Promise<{ recipients: PeerId[] }>
}
