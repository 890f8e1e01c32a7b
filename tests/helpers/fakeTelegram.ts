/**
 * A fake Telegram Bot API server on 127.0.0.1 for the bot's end-to-end tests: getMe,
 * deleteWebhook, getUpdates (honouring offset and timeout; answered at once without timeout, as
 * grammY's stop needs), sendMessage, answerCallbackQuery, editMessageText.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Sent {
  method: 'sendMessage' | 'editMessageText' | 'answerCallbackQuery';
  chatId?: number;
  messageId?: number;
  text?: string;
  buttons: Array<{ text: string; callback_data: string }>;
  /** The update being answered, when known (the last update delivered to that chat). */
}

interface Update {
  update_id: number;
  [key: string]: unknown;
}

export class FakeTelegram {
  readonly token: string;
  readonly sent: Sent[] = [];
  readonly requests: Array<{ method: string; body: Record<string, unknown> }> = [];
  private readonly updates: Update[] = [];
  private nextUpdateId = 1;
  private nextMessageId = 1000;
  private waiters: Array<() => void> = [];
  private server?: http.Server;
  /** The highest offset a getUpdates call confirmed. */
  confirmedOffset = 0;

  constructor(token: string) {
    this.token = token;
  }

  async start(): Promise<string> {
    this.server = http.createServer((req, res) => void this.route(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const w of this.waiters.splice(0)) w();
    this.server?.closeAllConnections();
    await new Promise((resolve) => this.server?.close(resolve));
  }

  pushText(userId: number, text: string): number {
    const entities = text.startsWith('/') ? [{ type: 'bot_command', offset: 0, length: text.split(' ')[0]!.length }] : undefined;
    return this.push({
      message: { message_id: this.nextMessageId++, date: now(), chat: { id: userId, type: 'private' }, from: user(userId), text, entities },
    });
  }

  pushCallback(userId: number, data: string, messageId: number): number {
    return this.push({
      callback_query: {
        id: `cb-${this.nextUpdateId}`,
        from: user(userId),
        chat_instance: 'ci',
        data,
        message: { message_id: messageId, date: now(), chat: { id: userId, type: 'private' }, text: 'question' },
      },
    });
  }

  private push(update: Omit<Update, 'update_id'>): number {
    const id = this.nextUpdateId++;
    this.updates.push({ update_id: id, ...update });
    for (const w of this.waiters.splice(0)) w();
    return id;
  }

  /** Messages sent or edited for one chat, oldest first. */
  conversation(userId: number): Sent[] {
    return this.sent.filter((s) => s.chatId === userId && s.method !== 'answerCallbackQuery');
  }

  async waitFor(predicate: () => boolean, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error('timed out waiting for the bot');
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const match = /^\/bot([^/]+)\/(\w+)$/.exec(req.url ?? '');
    let raw = '';
    for await (const chunk of req) raw += chunk;
    const body = raw ? (JSON.parse(raw) as Record<string, unknown>) : {};
    const reply = (result: unknown) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: true, result }));
    };
    if (!match || match[1] !== this.token) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: false, error_code: 401, description: 'Unauthorized' }));
      return;
    }
    const method = match[2]!;
    this.requests.push({ method, body });
    switch (method) {
      case 'getMe':
        return reply({ id: 42, is_bot: true, first_name: 'Intake', username: 'intake_test_bot' });
      case 'deleteWebhook':
        return reply(true);
      case 'getUpdates': {
        const offset = Number(body.offset ?? 0);
        this.confirmedOffset = Math.max(this.confirmedOffset, offset);
        const timeout = Number(body.timeout ?? 0);
        const limit = Number(body.limit ?? 100);
        const available = () => this.updates.filter((u) => u.update_id >= offset).slice(0, limit);
        if (available().length === 0 && timeout > 0) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, Math.min(timeout, 2) * 1000);
            this.waiters.push(() => {
              clearTimeout(timer);
              resolve();
            });
            req.on('close', () => resolve());
          });
        }
        if (res.destroyed || res.writableEnded) return;
        return reply(available());
      }
      case 'sendMessage':
      case 'editMessageText': {
        const chatId = Number(body.chat_id);
        const messageId = method === 'sendMessage' ? this.nextMessageId++ : Number(body.message_id);
        const markup = body.reply_markup as { inline_keyboard?: Array<Array<{ text: string; callback_data: string }>> } | undefined;
        this.sent.push({ method, chatId, messageId, text: String(body.text), buttons: markup?.inline_keyboard?.flat() ?? [] });
        return reply({ message_id: messageId, date: now(), chat: { id: chatId, type: 'private' }, text: body.text });
      }
      case 'answerCallbackQuery':
        this.sent.push({ method, buttons: [] });
        return reply(true);
      default:
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ ok: false, error_code: 404, description: `Not Found: method ${method}` }));
    }
  }
}

const now = () => Math.floor(Date.now() / 1000);
const user = (id: number) => ({ id, is_bot: false, first_name: `User ${id}` });
