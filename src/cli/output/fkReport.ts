/** Printing fk status: one section per reference, the blockers, and a verdict. */
import { describeReference, FK_BLOCKING_CHECKS, referenceById, type FkStatus, type ReferenceStatus } from '../../core/index.js';
import { painter, renderTable } from './table.js';

function renderReference(r: ReferenceStatus, useColor: boolean): string {
  const paint = painter(useColor);
  const s = r.state;
  if (!s) return `${paint.bold(describeReference(referenceById(r.reference)))}\n  table absent: nothing to add\n`;
  const facts = renderTable(
    ['what', 'state'],
    [
      ['column type', s.columnType],
      ['phase', r.phase === 'partial' ? 'partial: a run stopped midway' : r.phase.replace('_', ' ')],
      ['foreign key', s.foreignKey ? `${s.foreignKey.name} (${s.foreignKey.validated ? 'validated' : 'NOT VALID'})` : 'absent'],
      [
        'index on the column',
        s.caseIdIndex ? `${s.caseIdIndex.name}${s.caseIdIndex.valid ? '' : ' (INVALID: a failed concurrent build)'}` : 'absent',
      ],
      ['primary key', s.primaryKey ? `${s.primaryKey.name} (${s.primaryKey.columns.join(', ')})` : 'absent'],
      [
        'online migration',
        s.hasShadow || s.hasTrigger
          ? `in progress (${[s.hasShadow && 'shadow column', s.hasTrigger && 'sync trigger'].filter(Boolean).join(', ')})`
          : 'not started or past the swap',
      ],
      ['partitioned', s.partitioned ? 'yes' : 'no'],
      ['column position', `column ${s.columnPosition}`],
      ['rows (estimate)', s.rows ?? `unknown: never analysed (ANALYZE ${s.reference.qualified})`],
    ],
    useColor,
  );
  const dependents = s.dependents.length
    ? `${renderTable(
        [`depends on ${s.reference.column}`, 'online', 'rewrite'],
        s.dependents.map((d) => [
          `${d.kind.replace('_', ' ')} ${d.name}`,
          d.carried.online ?? paint.red('cannot carry'),
          d.carried.rewrite ?? paint.red('cannot carry'),
        ]),
        useColor,
      )}\n`
    : '';
  const steps = renderTable(
    ['step', 'done'],
    r.steps.map((st) => [st.id, st.done ? 'yes' : 'no']),
    useColor,
  );
  const refusal = r.refusal ? `${paint.red(`Refused: ${r.refusal}.`)}\n` : '';
  return `${paint.bold(describeReference(referenceById(r.reference)))}\n${facts}\n${dependents}${steps}\n${refusal}`;
}

export function renderFkStatus(status: FkStatus, useColor: boolean): string {
  const paint = painter(useColor);
  const b = status.blockers;
  const blocked = Object.values(b).some((n) => (n ?? 0) > 0);
  const blockers = renderTable(
    ['blocker', 'rows'],
    FK_BLOCKING_CHECKS.map((c) => [`${c.id} (${c.blocks!.why})`, b[c.id] ?? 0]),
    useColor,
  );
  const refused = status.references.find((r) => r.refusal);
  const partial = status.references.filter((r) => r.phase === 'partial');
  const verdict = status.complete
    ? paint.green('Every foreign key is in place and validated.')
    : refused
      ? paint.red('Refused: see the reference above; fk add changes nothing while it is refused.')
      : blocked
        ? paint.red('Blocked: run caseguard recover (with --quarantine for invalid and duplicate rows), then caseguard fk add.')
        : partial.length > 0
          ? paint.yellow(
              `Partial (${partial.map((r) => r.reference).join(', ')}): caseguard fk add resumes at the first step not done${partial.some((r) => r.state?.columnType === 'text') ? '; caseguard fk abort undoes it' : ''}.`,
            )
          : paint.yellow('Ready: caseguard fk plan shows the steps; caseguard fk add runs them.');
  return `${status.references.map((r) => renderReference(r, useColor)).join('\n')}\n${blockers}\n${verdict}\n`;
}
