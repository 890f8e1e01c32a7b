CREATE SCHEMA IF NOT EXISTS "caseguard";
--> statement-breakpoint
CREATE TABLE "caseguard"."quarantine" (
	"quarantine_id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "caseguard"."quarantine_quarantine_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"run_id" bigint NOT NULL,
	"source_table" text NOT NULL,
	"reason" text NOT NULL,
	"row_data" jsonb NOT NULL,
	"quarantined_at" timestamp with time zone DEFAULT now() NOT NULL,
	"restored_at" timestamp with time zone,
	"restored_by_run" bigint
);
--> statement-breakpoint
CREATE TABLE "caseguard"."run_items" (
	"item_id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "caseguard"."run_items_item_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"run_id" bigint NOT NULL,
	"action" text NOT NULL,
	"check_id" text,
	"table_name" text NOT NULL,
	"row_key" jsonb NOT NULL,
	"before" jsonb,
	"after" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "caseguard"."runs" (
	"run_id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "caseguard"."runs_run_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"command" text NOT NULL,
	"options" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"dry_run" boolean DEFAULT false NOT NULL,
	"db_user" text DEFAULT current_user NOT NULL,
	"os_user" text,
	"host" text,
	"status" text DEFAULT 'running' NOT NULL,
	"counts" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"error" text,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "caseguard"."quarantine" ADD CONSTRAINT "quarantine_run_id_runs_run_id_fk" FOREIGN KEY ("run_id") REFERENCES "caseguard"."runs"("run_id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "caseguard"."quarantine" ADD CONSTRAINT "quarantine_restored_by_run_runs_run_id_fk" FOREIGN KEY ("restored_by_run") REFERENCES "caseguard"."runs"("run_id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "caseguard"."run_items" ADD CONSTRAINT "run_items_run_id_runs_run_id_fk" FOREIGN KEY ("run_id") REFERENCES "caseguard"."runs"("run_id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "quarantine_run_id_idx" ON "caseguard"."quarantine" USING btree ("run_id");--> statement-breakpoint
CREATE INDEX "run_items_run_id_idx" ON "caseguard"."run_items" USING btree ("run_id","item_id");