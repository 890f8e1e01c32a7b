/** The benchmark's sections: each builds what it needs and compares against a baseline. */
import { exporterSection } from './exporter.mjs';
import { fkSection } from './fk.mjs';
import { incrementalSection } from './incremental.mjs';
import { rssSection, startupSection } from './process.mjs';
import { recoverSection } from './recover.mjs';
import { replicasSection } from './replicas.mjs';
import { restoreSection } from './restore.mjs';
import { scanSection } from './scan.mjs';
import { simulateSection } from './simulate.mjs';
import { watchSection } from './watch.mjs';

export const sections = [
  scanSection,
  incrementalSection,
  exporterSection,
  recoverSection,
  restoreSection,
  replicasSection,
  fkSection,
  rssSection,
  startupSection,
  simulateSection,
  watchSection,
];

/** What `--scale 10m` runs unless --only says otherwise: the sections measured at 10M rows. */
export const LARGE_SCALE_SECTIONS = ['scan', 'incremental', 'recover', 'watch'];
