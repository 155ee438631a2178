// Token prices for the gateway (by default $1 per million input tokens and $3 per million output
// tokens, DeGPT's public prices; docs/config.md, Gateway).
// A price per million tokens in USD is exactly a price per token in micro-USD, so the cost of a request
// is `prompt × input + completion × output` micro-USD. The sum is done in integers (BigInt pico-USD)
// because prices like 0.15 are not exact in binary floating point and 0.15 × 1000 would round up to 151.
import { ConfigError } from '../core/errors.ts'

export interface Price { inputPerMillionUsd: number, outputPerMillionUsd: number }

export const DEFAULT_PRICE: Price = { inputPerMillionUsd: 1, outputPerMillionUsd: 3 }

/** Prices are kept to this many decimals of a USD per million tokens (a pico-USD per token). */
const PRICE_SCALE = 1_000_000

export class PriceTable {
  private readonly prices = new Map<string, Price>()
  private readonly fallback: Price

  /** `prices` is keyed by model name or by "project/model"; names match case-insensitively because
   * users type model names by hand. */
  constructor (prices: Record<string, Price> = {}, fallback: Price = DEFAULT_PRICE) {
    for (const [name, price] of Object.entries(prices)) {
      checkPrice(`prices["${name}"]`, price)
      this.prices.set(name.toLowerCase(), { inputPerMillionUsd: price.inputPerMillionUsd, outputPerMillionUsd: price.outputPerMillionUsd })
    }
    checkPrice('fallback price', fallback)
    this.fallback = fallback
  }

  /** The most specific price: "project/model", then the model alone, then the fallback. */
  priceOf (project: string, model: string): Price {
    const m = model.toLowerCase()
    return this.prices.get(`${project.toLowerCase()}/${m}`) ?? this.prices.get(m) ?? this.fallback
  }

  /** Integer micro-USD, rounded up so a request is never billed less than it cost. Token counts that
   * are not finite or negative count as 0: usage reported by a model server must not break billing. */
  costMicroUsd (price: Price, promptTokens: number, completionTokens: number): number {
    const pico = BigInt(tokens(promptTokens)) * BigInt(scaled(price.inputPerMillionUsd)) +
      BigInt(tokens(completionTokens)) * BigInt(scaled(price.outputPerMillionUsd))
    const scale = BigInt(PRICE_SCALE)
    return Number((pico + scale - 1n) / scale)
  }
}

function tokens (n: number): number {
  return Number.isFinite(n) && n > 0 ? Math.ceil(n) : 0
}

function scaled (usdPerMillion: number): number {
  return Math.round(usdPerMillion * PRICE_SCALE)
}

function checkPrice (where: string, price: Price): void {
  for (const field of ['inputPerMillionUsd', 'outputPerMillionUsd'] as const) {
    const value = price?.[field]
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 1e6) {
      throw new ConfigError(`${where}.${field}: must be a number of USD from 0 to 1000000, got ${String(value)}`)
    }
  }
}

/** The price table the config's `Gateway` section describes. */
export function priceTableFrom (gateway: { DefaultPrice: { InputPerMillionUsd: number, OutputPerMillionUsd: number }, Prices: Array<{ Model: string, InputPerMillionUsd: number, OutputPerMillionUsd: number }> }): PriceTable {
  const prices: Record<string, Price> = {}
  for (const p of gateway.Prices) prices[p.Model] = { inputPerMillionUsd: p.InputPerMillionUsd, outputPerMillionUsd: p.OutputPerMillionUsd }
  return new PriceTable(prices, { inputPerMillionUsd: gateway.DefaultPrice.InputPerMillionUsd, outputPerMillionUsd: gateway.DefaultPrice.OutputPerMillionUsd })
}
