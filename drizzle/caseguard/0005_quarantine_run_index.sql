-- restore pages by (run_id, quarantine_id): an index the planner picks without statistics
CREATE INDEX "quarantine_run_id_quarantine_id_idx" ON "caseguard"."quarantine" USING btree ("run_id","quarantine_id");--> statement-breakpoint
DROP INDEX "caseguard"."quarantine_run_id_idx";
