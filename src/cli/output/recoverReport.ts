/** Printing recover's plan and result, as tables or JSON. */
import {
  constraintsRefusal,
  isQuarantineKind,
  TARGET_KIND_INFO,
  type TargetKind,
  TARGET_KINDS,
  type RecoverResult,
  type RecoveryPlan,
} from '../../core/index.js';
import { visible } from './scanFormats.js';
import { painter, prose, renderTable } from './table.js';

const label = (kind: TargetKind) => TARGET_KIND_INFO[kind].label;

export function renderPlan(plan: RecoveryPlan, useColor: boolean, options: { showSql: boolean; quarantine: boolean }): string {
  const paint = painter(useColor);
  const out: string[] = [];
  out.push(
    paint.bold(
      `Recovery plan (${plan.runId === null ? 'dry run, nothing journaled' : `run ${plan.runId}`}; ${plan.shape} shape; batches of ${plan.batchSize})`,
    ),
  );
  out.push(
    renderTable(
      ['step', 'rows', 'action'],
      TARGET_KINDS.map((k) => [
        label(k),
        plan.counts[k],
        isQuarantineKind(k) && !options.quarantine ? 'left (needs --quarantine)' : plan.counts[k] > 0 ? 'will run' : '-',
      ]),
      useColor,
    ),
  );
  if (plan.samples.length > 0) {
    out.push(paint.bold('Samples'));
    out.push(
      renderTable(
        ['step', 'check', 'user_id', 'case_id', 'canonical id', 'memory_id'],
        plan.samples.map((s) => [
          s.kind,
          s.check_id,
          visible(s.user_id ?? ''),
          visible(s.case_id ?? ''),
          s.canonical_id ?? '',
          s.memory_id ?? '',
        ]),
        useColor,
      ),
    );
  }
  if (plan.ambiguous.count > 0) {
    out.push(
      paint.yellow(
        prose(
          `${plan.ambiguous.count} missing case id(s) are referenced by several users; the owner chosen is the user of the earliest progress row:`,
        ),
      ),
    );
    out.push(
      renderTable(
        ['case id', 'owner chosen', 'all users'],
        plan.ambiguous.samples.map((s) => [s.canonical_id ?? '', visible(s.user_id ?? ''), visible((s.owner_list ?? []).join(', '))]),
        useColor,
      ),
    );
  }
  for (const note of plan.leftAlone) out.push(prose(`note: ${note}`));
  if (plan.counts.keep_duplicate > 0) {
    out.push(
      prose(
        `note: ${plan.counts.keep_duplicate} duplicate group(s): ${plan.duplicates === 'keep-latest' ? 'each user keeps the row the bot reads (the most recently updated), canonicalised; the other rows are quarantined' : 'every row is quarantined (--duplicates quarantine-all)'}`,
      ),
    );
  }
  // the application's rules one by one; what else refuses the plan here (the server, a privilege) after them
  for (const blocker of plan.constraints.blockers) out.push(paint.red(prose(`blocker: ${blocker}`)));
  for (const blocker of plan.blockers.filter((b) => b.reason !== constraintsRefusal(plan.constraints)))
    out.push(paint.red(prose(`blocker: ${blocker.reason}`)));
  for (const risk of plan.constraints.risks) out.push(paint.yellow(prose(`risk: ${risk}`)));
  if (options.showSql) {
    for (const s of plan.statements) {
      out.push(paint.bold(`-- ${s.kind}: one statement per batch; parameters ${JSON.stringify(s.params)}`));
      out.push(s.sql.endsWith(';') ? s.sql : `${s.sql};`);
    }
  }
  return `${out.join('\n')}\n`;
}

export function renderResult(result: RecoverResult | { status: 'dry_run' }, useColor: boolean): string {
  const paint = painter(useColor);
  if (result.status === 'dry_run')
    return `${paint.bold('Dry run')}${prose('Dry run: nothing was changed and nothing was journaled. Run without --dry-run to apply.').slice(7)}\n`;
  if (result.status === 'nothing_to_do')
    return `${paint.green('Nothing to do')}: no missing case, spelling or quarantine target (run ${result.runId} journaled).\n`;
  const table = renderTable(
    ['step', 'planned', 'applied'],
    TARGET_KINDS.filter((k) => result.plan.counts[k] > 0).map((k) => [label(k), result.plan.counts[k], result.applied[k]]),
    useColor,
  );
  const skipped =
    result.skipped > 0
      ? `\n${result.skipped} target(s) were already handled meanwhile (for example a case the live bot re-created) and were left alone.`
      : '';
  const rejected =
    result.rejected > 0
      ? `\n${paint.red(`${result.rejected} target(s) were rejected by the database`)} (the application's constraint or trigger; every other row was repaired): see \`caseguard runs show ${result.runId}\`, fix the cause or pass --case-value, and rerun caseguard recover.`
      : '';
  const title = result.status === 'partial' ? paint.yellow('Partly recovered') : paint.green('Recovered');
  return `${table}\n${title}: run ${result.runId}, ${result.batches} batch(es), longest batch ${Math.round(result.longestBatchMs)} ms, ${(result.durationMs / 1000).toFixed(2)} s.${skipped}${rejected}\n`;
}
