CREATE TABLE "caseguard"."case_deletions" (
	"deletion_id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "caseguard"."case_deletions_deletion_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"case_id" uuid NOT NULL,
	"deleted_at" timestamp with time zone DEFAULT clock_timestamp() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "caseguard"."deletion_tracking" (
	"installed_at" timestamp with time zone PRIMARY KEY DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX "case_deletions_deleted_at_idx" ON "caseguard"."case_deletions" USING btree ("deleted_at");--> statement-breakpoint
-- What the deletion triggers run (installed on mega_agent.cases only by `caseguard migrate
-- --track-deletions`): a statement's deleted cases in one insert; a case given another id, as
-- deleted under its old one. SECURITY DEFINER: the application's role needs no grant on caseguard.
CREATE FUNCTION "caseguard"."note_case_deletions"() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO caseguard.case_deletions (case_id) SELECT case_id FROM gone;
  ELSE
    INSERT INTO caseguard.case_deletions (case_id) VALUES (OLD.case_id);
  END IF;
  RETURN NULL;
END $$;
