// Checks a model API URL when a model is registered (README.md, "Models and projects"): an
// http(s) URL without credentials whose host is on this machine — host names are allowed when they
// resolve to it, including Docker/Podman container names — and which is neither a link-local/metadata
// address nor one of the node's own listeners. The address rules are in ./model-target.ts; the model
// client (src/models/client.ts) applies them again at every new connection.

import { AicnError, ErrorCode } from '../core/errors.ts'
import { ModelTargets, portOf, systemAddressSource, type LocalAddressSource, type OwnListeners } from '../models/model-target.ts'

export { systemAddressSource, type LocalAddressSource } from '../models/model-target.ts'

function paramError (message: string): AicnError {
  return new AicnError(ErrorCode.PARAM, message)
}

/** Validates a model API URL and returns it parsed. Throws AicnError(PARAM) with a message that says
 * what is wrong; the caller answers 400 with it. */
export async function checkModelApi (api: string, sources: LocalAddressSource = systemAddressSource, ownListeners: OwnListeners = () => []): Promise<URL> {
  return await checkModelApiWith(api, new ModelTargets(sources, ownListeners))
}

export async function checkModelApiWith (api: string, targets: ModelTargets): Promise<URL> {
  let url: URL
  try {
    url = new URL(api)
  } catch {
    throw paramError(`model api ${JSON.stringify(api)} is not a URL`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw paramError(`model api must use http or https, not ${JSON.stringify(url.protocol)}`)
  }
  if (url.username !== '' || url.password !== '') {
    // Credentials would be stored in the config and shown by registry queries.
    throw paramError('model api must not contain a user name or password')
  }
  // WHATWG URL has already lower-cased the host and normalised IP literals (e.g. 2130706433 → 127.0.0.1).
  await targets.addresses(url.hostname, portOf(url))
  return url
}
