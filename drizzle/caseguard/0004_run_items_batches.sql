-- A recover run keeps its targets in a temporary table of its own session now (recover/targets.ts): it needs no cleanup after a crash, and its snapshot can run as a parallel query.
DROP TABLE "caseguard"."run_targets" CASCADE;--> statement-breakpoint
ALTER TABLE "caseguard"."run_items" ADD COLUMN "row_count" integer DEFAULT 1 NOT NULL;--> statement-breakpoint
ALTER TABLE "caseguard"."run_items" ADD COLUMN "case_ids" uuid[];