/** caseguard bot: the intake bot, in the terminal (--console) or on Telegram. */
import os from 'node:os';
import type { Command } from 'commander';
import { examples } from '../options.js';

interface BotFlags {
  console?: boolean;
  user?: string;
  token?: string;
  apiRoot?: string;
}

export function defineBot(program: Command): void {
  program
    .command('bot')
    .description('run the intake bot: --console in the terminal, or Telegram with a token')
    .option('--console', 'chat in the terminal')
    .option('--user <id>', 'the console user id (default: console:<your login>)')
    .option('--token <token>', 'Telegram bot token (default: TELEGRAM_BOT_TOKEN)')
    .option('--api-root <url>', 'a self-hosted Bot API server (default: https://api.telegram.org)')
    .addHelpText(
      'after',
      `
The console and Telegram transports and simulate all call the same intake handlers. The token
never appears in output or logs.
${examples('caseguard bot --console', 'caseguard bot --console --user alice', 'TELEGRAM_BOT_TOKEN=123:abc caseguard bot', 'caseguard bot --api-root http://localhost:8081')}`,
    )
    .action(async (flags: BotFlags, command: Command) => {
      const { UsageError } = await import('../../core/index.js');
      const token = flags.token ?? process.env.TELEGRAM_BOT_TOKEN;
      if (!flags.console && !token) throw new UsageError('give --console, or a Telegram token in TELEGRAM_BOT_TOKEN (or --token)');
      if (flags.console && (flags.token || flags.apiRoot)) throw new UsageError('--console does not take --token or --api-root');
      if (flags.apiRoot) {
        try {
          new URL(flags.apiRoot);
        } catch {
          throw new UsageError(`--api-root is not a URL: ${flags.apiRoot}`);
        }
      }
      const { withDatabase } = await import('../context.js');
      const { createIntakeHandlers } = await import('../../core/index.js');
      await withDatabase(
        command,
        { judgesData: true, poolSize: flags.console ? 2 : 8, graceful: true, createsDatabase: true, pipeline: true, writes: true },
        async (ctx) => {
          const shape = await ctx.shape();
          // The intake writes; a standby or read-only database is refused before the first user.
          const { assertWritable } = await import('../../core/index.js');
          assertWritable(ctx.database, 'caseguard bot');
          const log = ctx.log.child({ command: 'bot' }, flags.console && !ctx.logLevelExplicit ? { level: 'warn' } : {});
          const { keepsPreparedStatements } = await import('../../core/index.js');
          const handlers = createIntakeHandlers({
            db: ctx.database.db,
            shape,
            log,
            preparedStatements: await keepsPreparedStatements(ctx.database.pool),
          });
          if (flags.console) {
            const { runConsole } = await import('../../bot/console.js');
            await runConsole({
              handlers,
              userId: flags.user ?? `console:${safeLogin()}`,
              input: process.stdin,
              output: process.stdout,
              log,
              interactive: Boolean(process.stdin.isTTY),
              signal: ctx.signal,
            });
            return;
          }
          const { createTelegramBot } = await import('../../bot/telegram.js');
          const bot = createTelegramBot({ handlers, token: token!, apiRoot: flags.apiRoot, log });
          ctx.signal.addEventListener('abort', () => void bot.stop(), { once: true });
          await bot.run();
          log.info({ event: 'bot.stopped' }, 'the bot stopped; every received update was handled');
        },
      );
    });
}

function safeLogin(): string {
  try {
    return os.userInfo().username;
  } catch {
    return 'user';
  }
}
