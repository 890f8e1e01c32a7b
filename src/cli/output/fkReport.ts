/** Printing fk status. */
import type { FkStatus } from '../../core/fk/fk.js';
import { painter, renderTable } from './table.js';

export function renderFkStatus(status: FkStatus, useColor: boolean): string {
  const paint = painter(useColor);
  const s = status.state;
  const facts = renderTable(
    ['what', 'state'],
    [
      ['case_id column', s.columnType],
      ['foreign key', s.foreignKey ? `${s.foreignKey.name} (${s.foreignKey.validated ? 'validated' : 'NOT VALID'})` : 'absent'],
      ['index on case_id', s.caseIdIndex ? `${s.caseIdIndex.name}${s.caseIdIndex.valid ? '' : ' (INVALID: a failed concurrent build)'}` : 'absent'],
      ['primary key', s.primaryKey ? `${s.primaryKey.name} (${s.primaryKey.columns.join(', ')})` : 'absent'],
      ['online migration', s.hasShadow ? `in progress (shadow column${s.hasTrigger ? ', sync trigger' : ''})` : 'not started or finished'],
      ['rows (estimate)', s.rows ?? 'unknown: never analysed (ANALYZE mega_agent.case_intake_progress)'],
    ],
    useColor,
  );
  const b = status.blockers;
  const blocked = b.orphaned_progress + b.invalid_case_id + b.duplicate_progress > 0;
  const blockers = renderTable(
    ['blocker', 'rows'],
    [
      ['orphaned_progress (no case to reference)', b.orphaned_progress],
      ['invalid_case_id (cannot become uuid)', b.invalid_case_id],
      ['duplicate_progress (collide as uuid)', b.duplicate_progress],
    ],
    useColor,
  );
  const steps = renderTable(['step', 'done'], status.steps.map((st) => [st.id, st.done ? 'yes' : 'no']), useColor);
  const verdict = status.complete
    ? paint.green('The foreign key is in place and validated.')
    : blocked
      ? paint.red('Blocked: run caseguard recover (with --quarantine for invalid and duplicate rows), then caseguard fk add.')
      : paint.yellow('Ready: caseguard fk plan shows the steps; caseguard fk add runs them.');
  return `${facts}\n${blockers}\n${steps}\n${verdict}\n`;
}
