import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { Systeminformation } from 'systeminformation'
import { HostInfoCollector } from '../../../src/hostinfo/index.ts'
import type { HostInfo, Probes } from '../../../src/hostinfo/index.ts'
import { mapCpu, mapDisks, mapGpus, mapMemory, mapOs } from '../../../src/hostinfo/collect.ts'

/** Probes that answer instantly with fixed data and count their calls. */
function fakeProbes (): { probes: Probes, calls: Record<keyof Probes, number> } {
  const calls = { os: 0, cpu: 0, memory: 0, disk: 0, gpu: 0 }
  const probes: Probes = {
    os: async () => {
      calls.os++
      return { os: 'linux', platform: 'Debian GNU/Linux', platform_family: 'debian', platform_version: '12', kernel_version: '6.1.0', kernel_arch: 'x86_64' }
    },
    cpu: async () => { calls.cpu++; return [{ model_name: 'AMD EPYC', total_cores: 2, total_threads: 4 }] },
    memory: async () => { calls.memory++; return { total_physical_bytes: 2048, total_usable_bytes: 1024 } },
    disk: async () => { calls.disk++; return [] },
    gpu: async () => { calls.gpu++; return [{ vendor: 'NVIDIA', product: 'RTX' }] }
  }
  return { probes, calls }
}

/** Every number a finite non-negative integer, nothing undefined: what JSON and protobuf need. */
function assertClean (value: unknown, path = 'info'): void {
  if (typeof value === 'number') {
    assert.ok(Number.isSafeInteger(value) && value >= 0, `${path} = ${value}`)
  } else if (Array.isArray(value)) {
    value.forEach((item, i) => assertClean(item, `${path}[${i}]`))
  } else if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) assertClean(item, `${path}.${key}`)
  } else {
    assert.equal(typeof value, 'string', `${path} is ${typeof value}`)
  }
}

describe('HostInfoCollector on this machine', () => {
  it('collects real host information', async () => {
    const info = await new HostInfoCollector().collect()
    assert.equal(info.os.os, 'linux')
    assert.notEqual(info.os.kernel_version, '')
    assert.ok(info.cpu.length >= 1)
    assert.ok(info.cpu[0].total_threads >= 1)
    assert.ok(info.memory.total_physical_bytes > 0)
    assert.ok(info.memory.total_usable_bytes > 0)
    assert.ok(info.memory.total_physical_bytes >= info.memory.total_usable_bytes)
    assert.ok(info.disk.every(disk => !/loop/.test(disk.model) && disk.size_bytes > 0))
    assert.equal(info.errors, undefined, `unexpected probe errors: ${info.errors?.join('; ')}`)
    assertClean(info)
    assert.deepEqual(JSON.parse(JSON.stringify(info)), info)
  })
})

describe('HostInfoCollector with injected probes', () => {
  it('keeps the other sections when a probe fails', async () => {
    const { probes } = fakeProbes()
    probes.gpu = async () => { throw new Error('nvidia-smi not found') }
    probes.os = () => { throw new Error('synchronous failure') }
    const info = await new HostInfoCollector({ probes }).collect()
    assert.deepEqual(info.gpu, [])
    assert.equal(info.os.os, '')
    assert.equal(info.memory.total_usable_bytes, 1024)
    assert.equal(info.cpu[0].model_name, 'AMD EPYC')
    assert.deepEqual(info.errors, ['os: synchronous failure', 'gpu: nvidia-smi not found'])
  })

  it('cuts off a hanging probe at its deadline and aborts it', async () => {
    const { probes } = fakeProbes()
    let aborted = false
    probes.disk = async (signal) => await new Promise(() => {
      signal.addEventListener('abort', () => { aborted = true })
    })
    // The probe never settles: collect() returning at all, with the timeout's error, shows the bound held.
    const info = await new HostInfoCollector({ probes, probeTimeoutMs: 50 }).collect()
    assert.deepEqual(info.disk, [])
    assert.equal(info.gpu.length, 1)
    assert.deepEqual(info.errors, ['disk: timed out after 50 ms'])
    assert.ok(aborted)
  })

  it('omits errors when every probe succeeds', async () => {
    const info = await new HostInfoCollector({ probes: fakeProbes().probes }).collect()
    assert.equal('errors' in info, false)
  })

  it('shares one collection between concurrent callers and caches it for cacheMs', async (t) => {
    t.mock.timers.enable({ apis: ['Date'] })
    const { probes, calls } = fakeProbes()
    const collector = new HostInfoCollector({ probes, cacheMs: 200 })
    const results = await Promise.all([collector.collect(), collector.collect(), collector.collect()])
    assert.deepEqual(calls, { os: 1, cpu: 1, memory: 1, disk: 1, gpu: 1 })
    assert.equal(results[1], results[0])
    assert.equal(results[2], results[0])

    assert.equal(await collector.collect(), results[0])
    assert.equal(calls.os, 1)

    t.mock.timers.tick(199)
    assert.equal(await collector.collect(), results[0], 'still cached just before cacheMs')
    t.mock.timers.tick(1)
    const fresh: HostInfo = await collector.collect()
    assert.notEqual(fresh, results[0])
    assert.equal(calls.os, 2)
  })

  it('collects every time with cacheMs 0', async () => {
    const { probes, calls } = fakeProbes()
    const collector = new HostInfoCollector({ probes, cacheMs: 0 })
    await collector.collect()
    await collector.collect()
    assert.equal(calls.cpu, 2)
  })
})

describe('mapping systeminformation output', () => {
  it('maps os information to Go spellings', () => {
    const data = { platform: 'linux', distro: 'Ubuntu', release: '22.04.4 LTS', kernel: '6.5.0-41-generic', arch: 'x64', logofile: 'ubuntu' } as Systeminformation.OsData
    assert.deepEqual(mapOs(data, '', { ID: 'ubuntu', ID_LIKE: 'debian' }), {
      os: 'linux', platform: 'Ubuntu', platform_family: 'debian', platform_version: '22.04.4 LTS', kernel_version: '6.5.0-41-generic', kernel_arch: 'x86_64'
    })
    assert.equal(mapOs({ ...data, distro: 'Rocky Linux' }, 'x86_64', { ID: 'rocky', ID_LIKE: 'rhel centos fedora' }).platform_family, 'rhel')
    const windows = mapOs({ ...data, platform: 'Windows', distro: 'Microsoft Windows 11 Pro', arch: 'x64' }, '', {})
    assert.equal(windows.os, 'windows')
    assert.equal(windows.platform_family, 'Standalone Workstation')
    assert.equal(mapOs({ ...data, arch: 'arm64' }, '', {}).kernel_arch, 'aarch64')
  })

  it('splits cpu totals per socket', () => {
    const data = { manufacturer: 'Intel', brand: 'Xeon Gold 6130', physicalCores: 32, cores: 64, processors: 2 } as Systeminformation.CpuData
    assert.deepEqual(mapCpu(data), [
      { model_name: 'Intel Xeon Gold 6130', total_cores: 16, total_threads: 32 },
      { model_name: 'Intel Xeon Gold 6130', total_cores: 16, total_threads: 32 }
    ])
    assert.equal(mapCpu({ ...data, processors: 0 }, 'Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz')[0].model_name, 'Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz')
  })

  it('prefers MemTotal for usable memory', () => {
    const data = { total: 17179869184 } as Systeminformation.MemData
    assert.deepEqual(mapMemory(data, 17105440768), { total_physical_bytes: 17179869184, total_usable_bytes: 17105440768 })
    assert.deepEqual(mapMemory(data), { total_physical_bytes: 17179869184, total_usable_bytes: 17179869184 })
  })

  it('drops loop and empty disks and names the drive types', () => {
    const disk = (device: string, type: string, size: number): Systeminformation.DiskLayoutData =>
      ({ device, type, size, name: `model ${device}`, serialNum: ' SN1 ' }) as Systeminformation.DiskLayoutData
    assert.deepEqual(mapDisks([
      disk('/dev/loop0', 'SSD', 1000),
      disk('/dev/sdz', 'HD', 0),
      disk('/dev/sda', 'HD', 2000396321280),
      disk('/dev/nvme0n1', 'NVMe', 512),
      disk('/dev/sdb', 'SSD', 256),
      disk('/dev/zram0', 'SSD', 64),
      disk('/dev/sdc', 'USB', 8)
    ]).map(d => [d.drive_type, d.size_bytes]), [['HDD', 2000396321280], ['SSD', 512], ['SSD', 256], ['virtual', 64], ['Unknown', 8]])
    assert.equal(mapDisks([disk('/dev/sda', 'HD', 1)])[0].serial_number, 'SN1')
  })

  it('maps gpus with a model and only the reported optional fields', () => {
    const gpus = mapGpus([
      { vendor: 'NVIDIA Corporation', model: 'NVIDIA GeForce RTX 4090', vram: 24564, driverVersion: '550.54', utilizationGpu: 37, memoryUsed: 1024.5 },
      { vendor: 'Matrox', model: 'MGA G200', vram: null },
      { vendor: 'Unknown', model: '', vram: 16 }
    ] as Systeminformation.GraphicsControllerData[])
    assert.deepEqual(gpus, [
      { vendor: 'NVIDIA Corporation', product: 'NVIDIA GeForce RTX 4090', memory_bytes: 24564 * 1024 * 1024, driver_version: '550.54', utilization_percent: 37, memory_used_bytes: 1074266112 },
      { vendor: 'Matrox', product: 'MGA G200' }
    ])
    assertClean(gpus)
  })
})
