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
      ['phase', status.phase === 'partial' ? 'partial: a run stopped midway' : status.phase.replace('_', ' ')],
      ['online migration', s.hasShadow || s.hasTrigger ? `in progress (${[s.hasShadow && 'shadow column', s.hasTrigger && 'sync trigger'].filter(Boolean).join(', ')})` : 'not started or past the swap'],
      ['partitioned', s.partitioned ? 'yes' : 'no'],
      ['case_id position', `column ${s.columnPosition}`],
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
  const dependents = s.dependents.length
    ? `${renderTable(
        ['depends on case_id', 'online', 'rewrite'],
        s.dependents.map((d) => [`${d.kind.replace('_', ' ')} ${d.name}`, d.carried.online ?? paint.red('cannot carry'), d.carried.rewrite ?? paint.red('cannot carry')]),
        useColor,
      )}\n`
    : '';
  const verdict = status.complete
    ? paint.green('The foreign key is in place and validated.')
    : status.refusal
      ? paint.red(`Refused: ${status.refusal}.`)
      : blocked
      ? paint.red('Blocked: run caseguard recover (with --quarantine for invalid and duplicate rows), then caseguard fk add.')
      : status.phase === 'partial'
        ? paint.yellow(`Partial: caseguard fk add resumes at the first step not done${s.columnType === 'text' ? '; caseguard fk abort undoes it' : ''}.`)
        : paint.yellow('Ready: caseguard fk plan shows the steps; caseguard fk add runs them.');
  return `${facts}\n${dependents}${blockers}\n${steps}\n${verdict}\n`;
}
