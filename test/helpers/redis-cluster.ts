// A real Redis Cluster of redis-server processes (see redis-server.ts), masters only, built with
// `redis-cli --cluster create` like an operator would, in a temporary directory removed at the end.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RedisServer } from './redis-server.js'
import { waitFor } from './pubsub-bus.js'

interface Teardown { teardown (fn: () => unknown): void }

/** Milliseconds before the cluster counts an unreachable node as failed; short, so a restarted node rejoins fast. */
const NODE_TIMEOUT = 1000

/** Arguments that make a redis-server a cluster node keeping its cluster state in `dir`. */
function clusterArgs (dir: string, extra: string[]): (port: number) => string[] {
  return (port) => [
    '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--dir', dir,
    '--cluster-node-timeout', String(NODE_TIMEOUT), ...extra
  ]
}

/** A Redis Cluster of `masters.length` masters, no replicas. */
export class RedisCluster {
  readonly masters: RedisServer[]

  private constructor (masters: RedisServer[]) {
    this.masters = masters
  }

  /** Starts `count` nodes, joins them into one cluster with every slot assigned, and waits until every node says it is ok. */
  static async start (t: Teardown, count: number, extra: string[] = []): Promise<RedisCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'wsconn-cluster-'))
    const masters = await Promise.all(Array.from({ length: count }, () => RedisServer.start(t, clusterArgs(dir, extra))))
    // Whatever order teardowns run in, the nodes are gone before their directory is removed.
    t.teardown(async () => {
      await Promise.all(masters.map((master) => master.kill()))
      rmSync(dir, { recursive: true, force: true })
    })
    const cluster = new RedisCluster(masters)
    if (count === 1) {
      await masters[0]!.cli('CLUSTER', 'ADDSLOTSRANGE', '0', '16383')
    } else {
      await masters[0]!.cli('--cluster', 'create', ...masters.map((master) => `127.0.0.1:${master.port}`), '--cluster-replicas', '0', '--cluster-yes')
    }
    await cluster.waitUntilOk()
    return cluster
  }

  /** The root nodes for node-redis's createCluster(). */
  get rootNodes (): Array<{ url: string }> {
    return this.masters.map((master) => ({ url: master.url }))
  }

  /** Waits until every node reports cluster_state:ok (after a start or a node's restart). */
  async waitUntilOk (): Promise<void> {
    await waitFor(async () => {
      const states = await Promise.all(this.masters.map(async (master) => (await master.cli('CLUSTER', 'INFO')).some((line) => line.trim() === 'cluster_state:ok')))
      return states.every(Boolean)
    }, 'cluster_state:ok on every node')
  }

  /** The master whose slots hold `channel` (CLUSTER KEYSLOT, then each node's own slot ranges from CLUSTER NODES). */
  async ownerOf (channel: string): Promise<RedisServer> {
    const slot = Number((await this.masters[0]!.cli('CLUSTER', 'KEYSLOT', channel))[0])
    for (const master of this.masters) {
      const myself = (await master.cli('CLUSTER', 'NODES')).find((line) => line.includes('myself'))!
      const ranges = myself.split(' ').slice(8).map((range) => range.split('-').map(Number))
      if (ranges.some(([from, to = from]) => slot >= from! && slot <= to!)) return master
    }
    throw new Error(`no master owns slot ${slot} of ${channel}`)
  }
}
