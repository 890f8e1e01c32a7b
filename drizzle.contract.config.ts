import { defineConfig } from 'drizzle-kit';

// The application's contract tables (mega_agent), for local and test databases.
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/core/schema/contract.ts',
  out: './drizzle/contract',
});
