// Structured logging with pino. The daemon's logger follows `App.LogLevel`, `App.LogOutput` (`+`-joined
// stdout, stderr, file) and `App.LogFormat`: a terminal gets one readable line per event
// (src/core/log-pretty.ts), a pipe or a supervisor gets JSON lines, and the file is always JSON. Unlike the
// Go node, the file sink honours the configured level.
import { pino, type Logger, type DestinationStream } from 'pino'
import { prettyStream } from './log-pretty.ts'

export type { Logger }

/** A silent logger for tests and library use. */
export const silentLogger: Logger = pino({ level: 'silent' })

export interface LoggerOptions {
  level: string
  output: string
  file?: string
  /** "auto" (default): pretty on a TTY, JSON otherwise */
  format?: string
}

/** Go's panic/fatal levels both mean "only the worst" here. */
function pinoLevel (level: string): string {
  return level === 'panic' ? 'fatal' : level
}

/** fd 1 or 2, pretty or JSON as the format and the terminal say. */
function console (fd: 1 | 2, format: string): DestinationStream {
  const tty = fd === 1 ? process.stdout.isTTY : process.stderr.isTTY
  const pretty = format === 'pretty' || (format !== 'json' && tty === true)
  const destination = pino.destination(fd)
  return pretty ? prettyStream(destination, { color: tty === true && process.env.NO_COLOR === undefined }) : destination
}

export function createLogger (options: LoggerOptions): Logger {
  const format = options.format ?? 'auto'
  const streams: Array<{ stream: DestinationStream }> = []
  for (const output of options.output.split('+').map((o) => o.trim()).filter((o) => o !== '')) {
    if (output === 'stdout') streams.push({ stream: console(1, format) })
    else if (output === 'stderr') streams.push({ stream: console(2, format) })
    else if (output === 'file' && options.file != null && options.file !== '') {
      streams.push({ stream: pino.destination({ dest: options.file, mkdir: true, append: true }) })
    }
  }
  if (streams.length === 0) streams.push({ stream: console(2, format) })
  const level = pinoLevel(options.level)
  return pino({ level, base: { name: 'aicn' } }, pino.multistream(streams.map((s) => ({ ...s, level: level as pino.Level }))))
}
