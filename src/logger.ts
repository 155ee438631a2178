// Structured logging with pino. The daemon's logger follows `App.LogLevel` and `App.LogOutput`
// (`+`-joined stdout, stderr, file); unlike the Go node, the file sink honours the configured level.
import { pino, type Logger, type DestinationStream } from 'pino'

export type { Logger }

/** A silent logger for tests and library use. */
export const silentLogger: Logger = pino({ level: 'silent' })

export interface LoggerOptions {
  level: string
  output: string
  file?: string
}

/** Go's panic/fatal levels both mean "only the worst" here. */
function pinoLevel (level: string): string {
  return level === 'panic' ? 'fatal' : level
}

export function createLogger (options: LoggerOptions): Logger {
  const streams: Array<{ stream: DestinationStream }> = []
  for (const output of options.output.split('+').map((o) => o.trim()).filter((o) => o !== '')) {
    if (output === 'stdout') streams.push({ stream: pino.destination(1) })
    else if (output === 'stderr') streams.push({ stream: pino.destination(2) })
    else if (output === 'file' && options.file != null && options.file !== '') {
      streams.push({ stream: pino.destination({ dest: options.file, mkdir: true, append: true }) })
    }
  }
  if (streams.length === 0) streams.push({ stream: pino.destination(2) })
  const level = pinoLevel(options.level)
  return pino({ level, base: { name: 'aicn' } }, pino.multistream(streams.map((s) => ({ ...s, level: level as pino.Level }))))
}
