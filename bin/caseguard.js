#!/usr/bin/env node
// Launches the compiled CLI; `npm install` builds dist/ through the `prepare` script.
import('../dist/cli/main.js')
  .then((cli) => cli.run(process.argv))
  .catch((error) => {
    if (error && error.code === 'ERR_MODULE_NOT_FOUND' && String(error.message).includes('dist/cli/main.js')) {
      process.stderr.write('caseguard: the CLI is not built; run `npm run build` first\n');
      process.exit(70);
    }
    throw error;
  });
