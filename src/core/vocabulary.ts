/**
 * The domain's words that the command line shows before it touches a database: the checks and
 * the references. Dependency-free, so the CLI can name them in its help texts at start-up
 * without loading the core (index.ts re-exports all of it: one set of functions).
 */
export { CHECKS, FK_BLOCKING_CHECKS, checkList, type CheckId, type CheckDefinition, type Severity } from './scan/checks.js';
export {
  CASE_REFERENCES,
  REFERENCE_IDS,
  describeReference,
  referenceById,
  type CaseReference,
  type ReferenceId,
  type ReferencingTable,
} from './references.js';
