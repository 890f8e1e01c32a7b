/**
 * The Telegram transport: grammY long polling over the same intake handlers. Choices are
 * inline keyboards (the callback is answered and the message edited). One user's updates are
 * handled in order, different users' concurrently; stop() lets every update already received
 * finish, and grammY confirms the offset, so none is lost or handled twice.
 */
import { Bot, GrammyError, HttpError, InlineKeyboard, type Context } from 'grammy';
import { COMMANDS, ConnectionError, type IntakeHandlers, type Logger, type Reply } from '../core/index.js';
import { KeyedQueue } from './keyedQueue.js';

export interface TelegramOptions {
  handlers: IntakeHandlers;
  token: string;
  apiRoot?: string;
  log: Logger;
}

export const APOLOGY = 'Sorry, something went wrong on our side. Please try again in a moment.';

/** Text with every occurrence of the token replaced: grammY's errors carry the request URL. */
export function redactToken(text: string, token: string): string {
  return token ? text.split(token).join('<token>') : text;
}

function describe(error: unknown, token: string): string {
  if (error instanceof GrammyError) return redactToken(`${error.method}: ${error.error_code} ${error.description}`, token);
  if (error instanceof HttpError) return redactToken(`network error: ${String((error.error as Error)?.message ?? error.message)}`, token);
  return redactToken(String((error as Error)?.message ?? error), token);
}

function keyboard(reply: Reply): InlineKeyboard | undefined {
  if (reply.buttons.length === 0) return undefined;
  const kb = new InlineKeyboard();
  for (const b of reply.buttons) kb.text(b.label, b.data).row();
  return kb;
}

export interface TelegramBot {
  /** Resolves when polling has stopped and every received update is handled. */
  run(): Promise<void>;
  stop(): Promise<void>;
}

export function createTelegramBot(options: TelegramOptions): TelegramBot {
  const { handlers, token, log } = options;
  const bot = new Bot(token, { client: options.apiRoot ? { apiRoot: options.apiRoot } : {} });
  const queue = new KeyedQueue();

  const handle = (ctx: Context, name: string, work: (userId: string) => Promise<void>) => {
    const from = ctx.from;
    if (!from) return;
    const userId = `tg:${from.id}`;
    queue.push(userId, async () => {
      try {
        await work(userId);
      } catch (error) {
        log.error({
          event: 'bot.update_failed',
          transport: 'telegram',
          handler: name,
          user_id: userId,
          update_id: ctx.update.update_id,
          err: describe(error, token),
        });
        await ctx.reply(APOLOGY).catch((e: unknown) => log.warn({ event: 'bot.apology_failed', err: describe(e, token) }));
      }
    });
  };
  const send = (ctx: Context, reply: Reply) => ctx.reply(reply.text, { reply_markup: keyboard(reply) });

  bot.command(['intake_start', 'start'], (ctx) => handle(ctx, 'start', async (u) => void (await send(ctx, await handlers.start(u)))));
  bot.command('intake_status', (ctx) => handle(ctx, 'status', async (u) => void (await send(ctx, await handlers.status(u)))));
  bot.command('intake_resume', (ctx) => handle(ctx, 'resume', async (u) => void (await send(ctx, await handlers.resume(u)))));
  bot.command('intake_cancel', (ctx) => handle(ctx, 'cancel', async (u) => void (await send(ctx, await handlers.cancel(u)))));
  bot.command('help', (ctx) => handle(ctx, 'help', async () => void (await ctx.reply(`Commands: ${COMMANDS}.`))));
  bot.on('callback_query:data', (ctx) =>
    handle(ctx, 'choice', async (u) => {
      const reply = await handlers.choice(u, ctx.callbackQuery.data);
      await ctx.answerCallbackQuery();
      await ctx.editMessageText(reply.text, { reply_markup: keyboard(reply) });
    }),
  );
  bot.on('message:text', (ctx) => handle(ctx, 'text', async (u) => void (await send(ctx, await handlers.text(u, ctx.message.text)))));
  bot.catch((error) => log.error({ event: 'bot.error', err: describe(error.error, token) }));

  let polling: Promise<void> | undefined;
  return {
    run: async () => {
      polling = bot.start({
        allowed_updates: ['message', 'callback_query'],
        onStart: (me) => log.info({ event: 'bot.started', transport: 'telegram', username: me.username }, `bot @${me.username} is polling`),
      });
      try {
        await polling;
      } catch (error) {
        throw new ConnectionError(`the Telegram bot stopped: ${describe(error, token)}`);
      } finally {
        await queue.drain();
      }
    },
    stop: async () => {
      if (bot.isRunning()) await bot.stop().catch((e: unknown) => log.warn({ event: 'bot.stop_failed', err: describe(e, token) }));
    },
  };
}
