/**
 * The console transport: a chat in the terminal over the same intake handlers. Buttons are
 * shown numbered and chosen by number. Ctrl-D and Ctrl-C end the chat cleanly.
 */
import readline from 'node:readline';
import { COMMANDS, type IntakeHandlers, type Logger, type Reply } from '../core/index.js';

export interface ConsoleOptions {
  handlers: IntakeHandlers;
  userId: string;
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
  log: Logger;
  /** Whether the input is a terminal (prompt shown) or a pipe. */
  interactive: boolean;
  /** Ends the chat (SIGINT/SIGTERM when the input is not a terminal). */
  signal?: AbortSignal;
}

const HELP = `Commands: ${COMMANDS}. Ctrl-D to leave.`;

export async function runConsole(options: ConsoleOptions): Promise<void> {
  const { handlers, userId, output, log } = options;
  const rl = readline.createInterface({
    input: options.input,
    output: options.interactive ? output : undefined,
    terminal: options.interactive,
  });
  let buttons: Reply['buttons'] = [];
  const say = (text: string) => output.write(`${text}\n`);
  const show = (reply: Reply) => {
    say(`bot: ${reply.text}`);
    buttons = reply.buttons;
    if (buttons.length > 0) say(buttons.map((b, i) => `  ${i + 1}) ${b.label}`).join('\n'));
  };
  say(`Intake assistant (user ${userId}). ${HELP}`);
  rl.setPrompt('you: ');
  if (options.interactive) rl.prompt();
  rl.on('SIGINT', () => rl.close());
  options.signal?.addEventListener('abort', () => rl.close(), { once: true });

  for await (const raw of rl) {
    const line = raw.trim();
    if (line !== '') {
      try {
        show(await route(handlers, userId, line, buttons));
      } catch (error) {
        log.error({ event: 'bot.update_failed', transport: 'console', user_id: userId, err: (error as Error).message });
        say('bot: Sorry, something went wrong on our side. Please try again in a moment.');
      }
    }
    if (options.interactive) rl.prompt();
  }
  say('Bye.');
}

async function route(handlers: IntakeHandlers, userId: string, line: string, buttons: Reply['buttons']): Promise<Reply> {
  switch (line.split(/\s+/)[0]) {
    case '/intake_start':
    case '/start':
      return handlers.start(userId);
    case '/intake_status':
      return handlers.status(userId);
    case '/intake_resume':
      return handlers.resume(userId);
    case '/intake_cancel':
      return handlers.cancel(userId);
    case '/help':
      return { text: HELP, buttons: [], outcome: 'shown', recovered: false };
  }
  const n = Number(line);
  if (buttons.length > 0 && Number.isInteger(n) && n >= 1 && n <= buttons.length) return handlers.choice(userId, buttons[n - 1]!.data);
  return handlers.text(userId, line);
}
