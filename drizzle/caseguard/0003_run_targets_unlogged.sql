ALTER TABLE "caseguard"."run_targets" DROP CONSTRAINT "run_targets_run_id_runs_run_id_fk";
--> statement-breakpoint
-- The snapshot is transient (deleted when its run ends, and by the next run after a crash): no WAL for it.
ALTER TABLE "caseguard"."run_targets" SET UNLOGGED;
