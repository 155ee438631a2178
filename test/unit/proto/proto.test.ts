import { test } from 'node:test'
import assert from 'node:assert/strict'
import protobuf from 'protobufjs'
import { protocol, job, encodeMessage, decodeMessage, ProtoDecodeError } from '../../../src/proto/index.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const ascii = (s: string): string => Buffer.from(s, 'utf8').toString('hex')

test('Message with header and AIProjectBody{res} round-trips', () => {
  const res: protocol.AIProjectResponse.$Properties = {
    projects: [
      {
        project: 'DecentralGPT',
        models: [
          { model: 'Llama3-70B', api: 'http://127.0.0.1:1042/v1/chat/completions', type: 0, idle: 2, cid: 'bafy1', available: true },
          { model: 'SDXL', api: 'http://127.0.0.1:1088/v1/images/generations', type: 1, idle: 0, cid: '' }
        ]
      },
      { project: 'Empty', models: [] }
    ],
    node_type: 0x02 | 0x04,
    region: 'eu-west',
    version: 'v0.1.0',
    capacity: 8
  }
  const body = protocol.AIProjectBody.encode({ res }).finish()
  const msg: protocol.Message.$Properties = {
    header: {
      client_version: 'v0.1.0',
      timestamp: 1736400000,
      id: '',
      node_id: '16Uiu2HAmExample',
      receiver: '',
      node_pub_key: new Uint8Array([8, 2, 18, 33, 3, 1, 2, 3])
    },
    type: protocol.MessageType.AI_PROJECT,
    body,
    result_code: 0,
    result_message: 'heartbeat'
  }

  const decoded = decodeMessage(encodeMessage(msg))
  assert.equal(decoded.type, protocol.MessageType.AI_PROJECT)
  assert.equal(decoded.result_code, 0)
  assert.equal(decoded.result_message, 'heartbeat')
  assert.ok(decoded.header)
  assert.equal(decoded.header.client_version, 'v0.1.0')
  assert.equal(decoded.header.timestamp, 1736400000)
  assert.equal(typeof decoded.header.timestamp, 'number', 'int64 decodes as a plain number')
  assert.equal(decoded.header.node_id, '16Uiu2HAmExample')
  assert.deepEqual([...(decoded.header.node_pub_key ?? [])], [8, 2, 18, 33, 3, 1, 2, 3])
  assert.equal(decoded.header.sign?.length, 0, 'unset bytes read back as an empty array')

  const decodedBody = protocol.AIProjectBody.decode(decoded.body)
  assert.equal(decodedBody.data, 'res')
  const r = decodedBody.res
  assert.ok(r)
  assert.equal(r.node_type, 6)
  assert.equal(r.region, 'eu-west')
  assert.equal(r.version, 'v0.1.0')
  assert.equal(r.capacity, 8)
  assert.equal(r.projects?.length, 2)
  const [p0, p1] = r.projects ?? []
  assert.equal(p0?.project, 'DecentralGPT')
  assert.equal(p0?.models?.[0]?.model, 'Llama3-70B')
  assert.equal(p0?.models?.[0]?.idle, 2)
  assert.equal(p0?.models?.[0]?.available, true)
  assert.equal(p0?.models?.[1]?.type, 1)
  assert.equal(p0?.models?.[1]?.available, null, 'optional field absent -> null, not false')
  assert.equal(p1?.project, 'Empty')
  assert.deepEqual(p1?.models, [])
})

test('heartbeat Message encodes to the exact protobuf bytes', () => {
  const bytes = encodeMessage({
    header: { node_id: 'a' },
    type: protocol.MessageType.AI_PROJECT,
    result_message: 'heartbeat'
  })
  // field 1 (header, len) { field 4 (node_id, len) "a" } | field 2 varint 2 | field 5 (len) "heartbeat"
  assert.equal(hex(bytes), '0a03220161' + '1002' + '2a09' + ascii('heartbeat'))
})

test('proto3 defaults are omitted on the wire', () => {
  assert.equal(encodeMessage({}).length, 0)
  assert.equal(encodeMessage({ header: {}, type: protocol.MessageType.PEER_IDENTITY, result_code: 0, result_message: '' }).length, 2) // empty header: 0a 00
  assert.equal(hex(encodeMessage({ header: {} })), '0a00')
})

test('field numbers and types match the Go schema (known encodings)', () => {
  const cases: Array<[string, Uint8Array, string]> = [
    ['MessageHeader all fields',
      protocol.MessageHeader.encode({ client_version: 'v', timestamp: 300, id: 'i', node_id: 'n', receiver: 'r', node_pub_key: new Uint8Array([1]), sign: new Uint8Array([2]) }).finish(),
      '0a0176' + '10ac02' + '1a0169' + '22016e' + '2a0172' + '320101' + '3a0102'],
    ['Message body/result_code, enum CHAT_COMPLETION=16',
      protocol.Message.encode({ type: protocol.MessageType.CHAT_COMPLETION, body: new Uint8Array([0xaa]), result_code: 1012 }).finish(),
      '1010' + '1a01aa' + '20f407'],
    ['MessageType IMAGE_GENERATION=17', protocol.Message.encode({ type: protocol.MessageType.IMAGE_GENERATION }).finish(), '1011'],
    ['PeerIdentityBody req (empty) = field 1', protocol.PeerIdentityBody.encode({ req: {} }).finish(), '0a00'],
    ['PeerIdentityResponse 5/6/1/2/3',
      protocol.PeerIdentityResponse.encode({ protocol_version: 'p', agent_version: 'a', public_key: new Uint8Array([9]), listen_addrs: ['x', 'y'], protocols: ['z'] }).finish(),
      '0a0109' + '120178' + '120179' + '1a017a' + '2a0170' + '320161'],
    ['ImageGenerationRequest 1..10 and wallet=16',
      protocol.ImageGenerationRequest.encode({ project: 'p', model: 'm', prompt: 'q', number: 1, size: 's', width: 2, height: 3, response_format: 'f', cid: 'c', step: 4, wallet: { wallet: 'w', signature: 'g', hash: 'h' } }).finish(),
      '0a0170' + '12016d' + '1a0171' + '2001' + '2a0173' + '3002' + '3803' + '420166' + '4a0163' + '5004' + '820109' + '0a0177' + '120167' + '1a0168'],
    ['ImageGenerationResponse created/choices{url,b64_json,revised_prompt}',
      protocol.ImageGenerationResponse.encode({ created: 5, choices: [{ url: 'u', b64_json: 'b', revised_prompt: 'r' }] }).finish(),
      '0805' + '1209' + '0a0175' + '120162' + '1a0172'],
    ['ChatCompletionRequest 1..7 (floats) and wallet=16',
      protocol.ChatCompletionRequest.encode({ project: 'p', model: 'm', messages: [{ role: 'user', content: Buffer.from('"Hi"') }], stream: true, cid: 'c', temperature: 1, top_p: 0.5, wallet: { wallet: 'w' } }).finish(),
      '0a0170' + '12016d' + '1a0c' + '0a04' + ascii('user') + '1204' + ascii('"Hi"') + '2001' + '2a0163' + '350000803f' + '3d0000003f' + '8201030a0177'],
    ['ChatCompletionResponse created/choices/usage/id/object',
      protocol.ChatCompletionResponse.encode({ created: 1, choices: [{ index: 1, message: { role: 'a', content: 'b' }, finish_reason: 's' }], usage: { completion_tokens: 1, prompt_tokens: 2, total_tokens: 3 }, id: 'i', object: 'o' }).finish(),
      '0801' + '120d' + '0801' + '1206' + '0a0161' + '120162' + '1a0173' + '1a06' + '080110021803' + '220169' + '2a016f'],
    ['ChatContentPart type/text/image/audio',
      protocol.ChatContentPart.encode({ type: protocol.ChatContentPart.Type.AUDIO, text: { type: 't', text: 'x' }, image: { url: 'u', detail: 'd' }, audio: { data: 'z', format: 'f' } }).finish(),
      '0802' + '1206' + '0a0174' + '120178' + '1a06' + '120175' + '1a0164' + '2206' + '12017a' + '1a0166'],
  ]
  const hostInfo = protocol.HostInfoResponse.encode({
    os: { os: 'o', platform: 'p', platform_family: 'f', platform_version: 'v', kernel_version: 'k', kernel_arch: 'a' },
    cpu: [{ model_name: 'm', total_cores: 4, total_threads: 8 }],
    memory: { total_physical_bytes: 16, total_usable_bytes: 15 },
    disk: [{ drive_type: 'S', size_bytes: 1000, model: 'd', serial_number: 's' }],
    gpu: [{ vendor: 'N', product: 'X', memory_bytes: 1, driver_version: 'd', utilization_percent: 50, memory_used_bytes: 2 }],
    errors: ['e']
  }).finish()
  cases.push(['HostInfoResponse os/cpu/memory/disk/gpu + aicn extensions', hostInfo,
    '0a12' + '0a016f' + '120170' + '1a0166' + '220176' + '2a016b' + '320161' + // 1 os {1..6}
    '1207' + '0a016d' + '1004' + '1808' + //                                       2 cpu {1 model_name, 2 cores, 3 threads}
    '1a04' + '0810' + '100f' + //                                                  3 memory {1 physical, 2 usable}
    '220c' + '0a0153' + '10e807' + '1a0164' + '220173' + //                        4 disk {1 type, 2 size, 3 model, 4 serial}
    '2a13' + '0a014e' + '120158' + 'a00601' + 'aa060164' + 'b00632' + 'b80602' + // 5 gpu {1,2, ext 100..103}
    'a20601' + '65']) //                                                           ext 100 errors
  cases.push(['AIModelOfProject 1..5 + ext available=100',
    protocol.AIModelOfProject.encode({ model: 'm', api: 'a', type: 1, idle: 2, cid: 'c', available: false }).finish(),
    '0a016d' + '120161' + '1801' + '2002' + '2a0163' + 'a00600'])
  cases.push(['AIProjectResponse projects/node_type + ext region/version/capacity',
    protocol.AIProjectResponse.encode({ projects: [{ project: 'p', models: [{ model: 'm' }] }], node_type: 7, region: 'r', version: 'v', capacity: 3 }).finish(),
    '0a08' + '0a0170' + '1203' + '0a016d' + '1007' + 'a2060172' + 'aa060176' + 'b00603'])
  cases.push(['HostInfoBody / ImageGenerationBody / ChatCompletionBody / AIProjectBody oneof numbers',
    Buffer.concat([
      protocol.HostInfoBody.encode({ req: {} }).finish(), protocol.HostInfoBody.encode({ res: {} }).finish(),
      protocol.ImageGenerationBody.encode({ req: {} }).finish(), protocol.ImageGenerationBody.encode({ res: {} }).finish(),
      protocol.ChatCompletionBody.encode({ req: {} }).finish(), protocol.ChatCompletionBody.encode({ res: {} }).finish(),
      protocol.AIProjectBody.encode({ req: {} }).finish(), protocol.AIProjectBody.encode({ res: {} }).finish()
    ]),
    '0a00' + '1200' + '0a00' + '1200' + '0a00' + '1200' + '0a00' + '1200'])
  cases.push(['ChatContentParts parts=1', protocol.ChatContentParts.encode({ parts: [{}] }).finish(), '0a00'])

  for (const [name, bytes, want] of cases) assert.equal(hex(bytes), want, name)
})

// The Go node's view of the messages we extend: the same definitions without our >= 100 fields.
const goView = protobuf.parse(`
  syntax = "proto3";
  package gocheck;
  message AIModelOfProject { string model = 1; string api = 2; uint32 type = 3; uint32 idle = 4; string cid = 5; }
  message AIProjectOfNode { string project = 1; repeated AIModelOfProject models = 2; }
  message AIProjectResponse { repeated AIProjectOfNode projects = 1; uint32 node_type = 2; }
  message GpuInfo { string vendor = 1; string product = 2; }
`, { keepCase: true }).root

test('aicn extension fields are an unchanged-prefix addition that a Go-schema reader ignores', () => {
  const base = { model: 'Llama3-70B', api: 'http://127.0.0.1:1042/v1', type: 0, idle: 3, cid: 'bafyabc' }
  const plain = protocol.AIModelOfProject.encode(base).finish()
  const extended = protocol.AIModelOfProject.encode({ ...base, available: true }).finish()
  // fields 1..5 are byte-identical; the extension is only appended (tag 100 varint = a0 06, value 01)
  assert.equal(hex(extended), hex(plain) + 'a00601')

  // a reader that lacks field 100 (as Go's generated code does) decodes the fields it knows and skips the rest
  const goModel = goView.lookupType('gocheck.AIModelOfProject')
  assert.deepEqual(goModel.toObject(goModel.decode(extended), { defaults: true }), base)

  const goResp = goView.lookupType('gocheck.AIProjectResponse')
  const resp = protocol.AIProjectResponse.encode({
    projects: [{ project: 'p', models: [{ ...base, available: false }] }], node_type: 4, region: 'eu', version: 'v1', capacity: 2
  }).finish()
  assert.deepEqual(goResp.toObject(goResp.decode(resp), { defaults: true }), { projects: [{ project: 'p', models: [base] }], node_type: 4 })

  const goGpu = goView.lookupType('gocheck.GpuInfo')
  const gpu = protocol.HostInfoResponse.GpuInfo.encode({ vendor: 'NVIDIA', product: 'RTX 4090', memory_bytes: 24 * 2 ** 30, driver_version: '550', utilization_percent: 7, memory_used_bytes: 2 ** 40 }).finish()
  assert.deepEqual(goGpu.toObject(goGpu.decode(gpu), { defaults: true }), { vendor: 'NVIDIA', product: 'RTX 4090' })

  // and the other direction: bytes from a Go node (no extensions) decode with extensions at their defaults
  const fromGo = goResp.encode(goResp.fromObject({ projects: [{ project: 'p', models: [base] }], node_type: 1 })).finish()
  const ours = protocol.AIProjectResponse.decode(fromGo)
  assert.equal(ours.region, '')
  assert.equal(ours.capacity, 0)
  assert.equal(ours.projects?.[0]?.models?.[0]?.available, null)
  assert.equal(ours.projects?.[0]?.models?.[0]?.idle, 3)

  // unknown fields from some future peer (here field 200) are skipped too
  const future = Buffer.concat([plain, Buffer.from('c20c0378797a', 'hex')])
  assert.equal(protocol.AIModelOfProject.decode(future).cid, 'bafyabc')
})

test('large 64-bit values decode as numbers', () => {
  const disk = protocol.HostInfoResponse.DiskInfo.decode(
    protocol.HostInfoResponse.DiskInfo.encode({ size_bytes: 8 * 2 ** 40 }).finish())
  assert.equal(disk.size_bytes, 8 * 2 ** 40)
  const h = protocol.MessageHeader.decode(protocol.MessageHeader.encode({ timestamp: -1 }).finish())
  assert.equal(h.timestamp, -1)
})

test('decodeMessage throws on garbage', () => {
  const garbage = [
    [0x0a, 0x05, 0x01], // header says 5 bytes follow, only 1 does
    [0xff], // truncated varint tag
    [0x0f], // wire type 7 does not exist
    [0x00], // field number 0 is illegal
    [0x10, 0x99] // truncated varint value
  ]
  for (const g of garbage) {
    assert.throws(() => decodeMessage(Uint8Array.from(g)), ProtoDecodeError, `bytes ${hex(Uint8Array.from(g))}`)
  }
  assert.throws(() => decodeMessage(Buffer.from('{"not":"protobuf"}')), ProtoDecodeError)
  assert.throws(() => protocol.AIProjectBody.decode(Uint8Array.from([0x12, 0x07, 0x0a])))
})

test('JobFrame round-trips each oneof case', () => {
  const head: job.JobRequestHead.$Properties = {
    request_id: '3f0c1e5a-7d1b-4c5e-9a2f-0b1c2d3e4f50',
    project: 'DecentralGPT',
    model: 'Llama3-70B',
    cid: 'bafy',
    kind: job.JobKind.JOB_KIND_IMAGE_EDIT,
    content_type: 'multipart/form-data; boundary=x',
    stream: true,
    deadline_unix_ms: 1736400000123,
    path: '/v1/images/edits'
  }
  const frames: job.JobFrame.$Properties[] = [
    { request_head: head },
    { body_chunk: Buffer.from('data: {"x":1}\n\n') },
    { response_head: { status: 200, content_type: 'text/event-stream', node_id: '16Uiu2HAm', cid: 'bafy', error_code: 0, error_message: '' } },
    { end: { error_code: 1007, error_message: 'model server died' } },
    { end: {} }
  ]
  const decoded = frames.map((f) => job.JobFrame.decode(job.JobFrame.encode(f).finish()))

  assert.equal(decoded[0]?.frame, 'request_head')
  assert.deepEqual({ ...decoded[0]?.request_head }, head)
  assert.equal(decoded[0]?.request_head?.deadline_unix_ms, 1736400000123)

  assert.equal(decoded[1]?.frame, 'body_chunk')
  assert.equal(Buffer.from(decoded[1]?.body_chunk ?? []).toString(), 'data: {"x":1}\n\n')

  assert.equal(decoded[2]?.frame, 'response_head')
  assert.equal(decoded[2]?.response_head?.status, 200)
  assert.equal(decoded[2]?.response_head?.content_type, 'text/event-stream')
  assert.equal(decoded[2]?.response_head?.node_id, '16Uiu2HAm')

  assert.equal(decoded[3]?.frame, 'end')
  assert.equal(decoded[3]?.end?.error_code, 1007)
  assert.equal(decoded[3]?.end?.error_message, 'model server died')

  // an empty JobEnd (success) is still a present oneof case on the wire: 22 00
  assert.equal(hex(job.JobFrame.encode({ end: {} }).finish()), '2200')
  assert.equal(decoded[4]?.frame, 'end')
  assert.equal(decoded[4]?.end?.error_code, 0)

  // an empty body chunk is also kept as a present case (12 00)
  const empty = job.JobFrame.decode(job.JobFrame.encode({ body_chunk: new Uint8Array(0) }).finish())
  assert.equal(empty.frame, 'body_chunk')

  // frame with no known case (e.g. a future frame type 9) decodes with frame undefined
  const unknown = job.JobFrame.decode(Uint8Array.from([0x4a, 0x00]))
  assert.equal(unknown.frame, undefined)
})

test('JobKind enum values', () => {
  assert.deepEqual(
    [job.JobKind.JOB_KIND_CHAT, job.JobKind.JOB_KIND_IMAGE_GEN, job.JobKind.JOB_KIND_IMAGE_EDIT, job.JobKind.JOB_KIND_EMBEDDING, job.JobKind.JOB_KIND_COMPLETION],
    [0, 1, 2, 3, 4])
})
