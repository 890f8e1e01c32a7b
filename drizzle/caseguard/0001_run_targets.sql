CREATE TABLE "caseguard"."run_targets" (
	"run_id" bigint NOT NULL,
	"kind" text NOT NULL,
	"seq" bigint NOT NULL,
	"check_id" text NOT NULL,
	"user_id" text,
	"case_id" text,
	"canonical_id" uuid,
	"memory_id" bigint,
	"owners" integer,
	"owner_list" text[],
	CONSTRAINT "run_targets_run_id_kind_seq_pk" PRIMARY KEY("run_id","kind","seq")
);
--> statement-breakpoint
ALTER TABLE "caseguard"."run_targets" ADD CONSTRAINT "run_targets_run_id_runs_run_id_fk" FOREIGN KEY ("run_id") REFERENCES "caseguard"."runs"("run_id") ON DELETE no action ON UPDATE no action;