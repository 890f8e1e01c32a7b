CREATE TABLE "caseguard"."watch_slots" (
	"slot_name" text PRIMARY KEY NOT NULL,
	"publication" text NOT NULL,
	"created_publication" boolean DEFAULT false NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"created_by" text DEFAULT current_user NOT NULL
);
