// libp2p v3 and its helpers call Promise.withResolvers, which Node 20 lacks (it arrived in Node 22).
// This module must be imported before anything that loads libp2p.
interface Resolvers<T> { promise: Promise<T>, resolve: (value: T | PromiseLike<T>) => void, reject: (reason?: unknown) => void }

const promiseConstructor = Promise as unknown as { withResolvers?: <T>() => Resolvers<T> }
if (typeof promiseConstructor.withResolvers !== 'function') {
  promiseConstructor.withResolvers = function withResolvers<T> (): Resolvers<T> {
    let resolve!: Resolvers<T>['resolve']
    let reject!: Resolvers<T>['reject']
    const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}

export {}
