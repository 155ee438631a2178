// The job protocol (/aicn/job/1.1.0 and 1.0.0) as a libp2p service: a job travels to the node that
// serves its model and the answer streams back (job-protocol.ts; framing in job-frames.ts, the two sides
// in job-requester.ts and job-worker.ts). Give it this node's runner with `serveWith()` before the node
// starts; libp2p starts it (handlers in place before the node listens) and stops it (running jobs end
// with an error the other side sees, before any connection closes).
//
//   services: { jobs: jobProtocol({ log, budgets }) }   →   host.services.jobs.run(peer, request, signal)
import { JobProtocol, type JobComponents, type JobProtocolOptions } from './job-protocol.ts'

export { JOB_PROTOCOL, JOB_PROTOCOL_1_0, JOB_PROTOCOLS, JobProtocol, type JobComponents, type JobProtocolOptions } from './job-protocol.ts'

export type JobProtocolInit = JobProtocolOptions

export function jobProtocol (init: JobProtocolInit): (components: JobComponents) => JobProtocol {
  return (components) => new JobProtocol(components, init)
}
