import { defineConfig } from 'drizzle-kit';

// caseguard's own schema (journal, quarantine); applied wherever caseguard first needs it.
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/core/schema/journal.ts',
  out: './drizzle/caseguard',
});
