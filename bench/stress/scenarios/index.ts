import type { Scenario } from '../scenario.js'
import { churn } from './churn.js'
import { closeNoLoss } from './close-no-loss.js'
import { deflateBomb } from './deflate-bomb.js'
import { fragments } from './fragments.js'
import { garbage } from './garbage.js'
import { idle } from './idle.js'
import { pingFlood } from './ping-flood.js'
import { resets } from './resets.js'
import { slowReaders } from './slow-readers.js'
import { stalledHandshakes } from './stalled.js'

/** Every scenario, in the order they run. */
export const SCENARIOS: Scenario[] = [
  slowReaders, churn, resets, stalledHandshakes, fragments, deflateBomb, garbage, idle, pingFlood, closeNoLoss
]
