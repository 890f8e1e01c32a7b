/** The benchmark's sections: each builds what it needs and compares against a baseline. */
import { exporterSection } from './exporter.mjs';
import { fkSection } from './fk.mjs';
import { rssSection, startupSection } from './process.mjs';
import { recoverSection } from './recover.mjs';
import { replicasSection } from './replicas.mjs';
import { restoreSection } from './restore.mjs';
import { scanSection } from './scan.mjs';
import { simulateSection } from './simulate.mjs';

export const sections = [
  scanSection,
  exporterSection,
  recoverSection,
  restoreSection,
  replicasSection,
  fkSection,
  rssSection,
  startupSection,
  simulateSection,
];
