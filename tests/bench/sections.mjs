/** The benchmark's sections: each builds what it needs and compares against a baseline. */
import { recoverSection } from './recover.mjs';
import { scanSection } from './scan.mjs';

export const sections = [scanSection, recoverSection];
