CREATE TABLE "caseguard"."watch_findings" (
	"slot_name" text NOT NULL,
	"row_key" text NOT NULL,
	"findings" jsonb NOT NULL,
	CONSTRAINT "watch_findings_slot_name_row_key_pk" PRIMARY KEY("slot_name","row_key")
);
--> statement-breakpoint
CREATE TABLE "caseguard"."watch_slots" (
	"slot_name" text PRIMARY KEY NOT NULL,
	"publication" text NOT NULL,
	"created_publication" boolean DEFAULT false NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"created_by" text DEFAULT current_user NOT NULL,
	"state_saved_at" timestamp with time zone,
	"state_shape" text
);
--> statement-breakpoint
ALTER TABLE "caseguard"."watch_findings" ADD CONSTRAINT "watch_findings_slot_name_watch_slots_slot_name_fk" FOREIGN KEY ("slot_name") REFERENCES "caseguard"."watch_slots"("slot_name") ON DELETE cascade ON UPDATE no action;