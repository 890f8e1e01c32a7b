/** The bot through the built binary: the console over stdin/stdout, Telegram against a fake Bot API. */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { questionByKey } from '../../src/core/intake/questionnaire.js';
import { BIN, runCli } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { FakeTelegram, type Sent } from '../helpers/fakeTelegram.js';
import { VALID_ANSWERS } from '../helpers/intake.js';

const TOKEN = '123456:SECRET-token-value';

describe('caseguard bot --console', () => {
  let t: TestDatabase;
  beforeEach(async () => {
    t = await createTestDatabase();
  });
  afterEach(() => t?.drop());

  it('a whole intake through stdin and stdout; numbered buttons; ends cleanly at end of input', async () => {
    const lines = [
      '/intake_start',
      'Ada Lovelace',
      'not-an-email',
      'ada@example.com',
      '+44 20 7946 0000',
      '3',
      '1',
      '2024-03-15',
      'I was dismissed after reporting a safety issue.',
      'Acme Ltd',
      '2',
      '2',
      '/intake_status',
    ];
    const r = await runCli(['bot', '--console', '--user', 'console-ada', '--database-url', t.url], { input: `${lines.join('\n')}\n` });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\(1\/10\) What is your full name\?/);
    expect(r.stdout).toMatch(/That does not look like an email address/);
    expect(r.stdout).toMatch(/ {2}1\) Email\n {2}2\) Phone\n {2}3\) This chat/);
    expect(r.stdout).toMatch(/your intake is complete\. Your case reference is [0-9a-f-]{36}\./);
    expect(r.stdout).toMatch(/Your most recent intake is complete/);
    expect(r.stdout.trim().endsWith('Bye.')).toBe(true);
    const p = await t.pool.query("SELECT status, answers FROM mega_agent.case_intake_progress WHERE user_id = 'console-ada'");
    expect(p.rows[0].status).toBe('completed');
    expect(p.rows[0].answers).toMatchObject({ contact_preference: 'chat', case_type: 'employment', has_lawyer: 'no', urgency: 'medium' });
  });
});

describe('caseguard bot --console at its edges', () => {
  let t: TestDatabase;
  beforeEach(async () => {
    t = await createTestDatabase();
  });
  afterEach(() => t?.drop());

  it('a typo command is answered with the commands and never saved as the name; cancel with answers asks first', async () => {
    const lines = ['/intake_start', '/intake_stauts', 'Ada Lovelace', '/intake_status', '/intake_cancel', '2', '/intake_cancel', '1'];
    const r = await runCli(['bot', '--console', '--user', 'console-edge', '--database-url', t.url], { input: `${lines.join('\n')}\n` });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Unknown command \/intake_stauts\. Commands: \/intake_start/);
    expect(r.stdout).toMatch(/Your intake is in progress: question 2 of \d+[^\n]*\n\(2\/\d+\) What email address can we reach you at\?/);
    expect(r.stdout).toMatch(
      /You have answered 1 question\(s\); cancelling closes this intake and its case\. Cancel it\?\n {2}1\) Yes, cancel it\n {2}2\) No, keep going/,
    );
    expect(r.stdout).toMatch(/Good, let us go on\./);
    expect(r.stdout).toMatch(/Your intake has been cancelled/);
    const p = await t.pool.query("SELECT status, answers FROM mega_agent.case_intake_progress WHERE user_id = 'console-edge'");
    expect(p.rows[0]).toEqual({ status: 'cancelled', answers: { full_name: 'Ada Lovelace' } });
  });
});

describe('caseguard bot (Telegram, against a fake Bot API)', () => {
  let t: TestDatabase;
  let api: FakeTelegram;
  let child: ChildProcess;
  let stderr = '';
  let stdout = '';

  beforeEach(async () => {
    t = await createTestDatabase();
    api = new FakeTelegram(TOKEN);
    const root = await api.start();
    stderr = '';
    stdout = '';
    child = spawn(process.execPath, [BIN, 'bot', '--api-root', root, '--database-url', t.url, '--log-level', 'debug'], {
      env: { ...process.env, TELEGRAM_BOT_TOKEN: TOKEN, CI: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    await api.waitFor(() => stderr.includes('bot.started'));
  });
  afterEach(async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    await api.stop();
    await t.drop();
  });

  const stopBot = async () => {
    child.kill('SIGTERM');
    return new Promise<number | null>((resolve) => child.on('close', resolve));
  };

  /** Answers whatever the last message to this user asks, by button or by text. */
  async function answerLast(userId: number): Promise<void> {
    const last = api.conversation(userId).at(-1)!;
    const before = api.conversation(userId).length;
    const key = Object.keys(VALID_ANSWERS).find((k) => last.text?.includes(questionByKey(k)!.prompt));
    if (!key) throw new Error(`no question in ${last.text}`);
    if (last.buttons.length > 0) {
      const button = last.buttons.find((b) => b.callback_data === `${key}=${VALID_ANSWERS[key]}`)!;
      api.pushCallback(userId, button.callback_data, last.messageId!);
    } else {
      api.pushText(userId, VALID_ANSWERS[key]!);
    }
    await api.waitFor(() => api.conversation(userId).length > before);
  }

  it('completes a whole intake: inline keyboards, answered callbacks, edited messages; the database agrees', async () => {
    const userId = 7001;
    api.pushText(userId, '/intake_start');
    await api.waitFor(() => api.conversation(userId).length === 1);
    for (let i = 0; i < 20 && !api.conversation(userId).at(-1)!.text!.includes('complete'); i++) await answerLast(userId);
    const conversation = api.conversation(userId);
    expect(conversation.at(-1)!.text).toMatch(/your intake is complete/);
    expect(conversation.some((m: Sent) => m.method === 'editMessageText')).toBe(true);
    expect(conversation.find((m) => m.text?.includes('How do you prefer to be contacted'))!.buttons.map((b) => b.text)).toEqual([
      'Email',
      'Phone',
      'This chat',
    ]);
    expect(api.sent.filter((s) => s.method === 'answerCallbackQuery').length).toBe(4);

    const db = await t.pool.query(`
      SELECT p.status, p.answers, c.status AS case_status,
             (SELECT count(*)::int FROM mega_agent.case_memory m WHERE m.case_id = p.case_id) AS memory
        FROM mega_agent.case_intake_progress p JOIN mega_agent.cases c ON c.case_id::text = p.case_id
       WHERE p.user_id = 'tg:7001'`);
    expect(db.rows).toHaveLength(1);
    expect(db.rows[0]).toMatchObject({ status: 'completed', case_status: 'intake_complete', memory: 11 });
    const orphans = await t.pool.query(
      'SELECT count(*)::int AS n FROM mega_agent.case_intake_progress p WHERE NOT EXISTS (SELECT 1 FROM mega_agent.cases c WHERE c.case_id::text = p.case_id)',
    );
    expect(orphans.rows[0].n).toBe(0);

    expect(await stopBot()).toBe(0);
    expect(stderr).not.toContain('SECRET');
    expect(stdout).not.toContain('SECRET');
  });

  it('a case deleted mid-conversation is re-created by the guard and the user carries on', async () => {
    const userId = 7002;
    api.pushText(userId, '/intake_start');
    await api.waitFor(() => api.conversation(userId).length === 1);
    await answerLast(userId);
    await t.pool.query("DELETE FROM mega_agent.cases WHERE user_id = 'tg:7002'");
    for (let i = 0; i < 20 && !api.conversation(userId).at(-1)!.text!.includes('complete'); i++) await answerLast(userId);
    expect(api.conversation(userId).at(-1)!.text).toMatch(/complete/);
    const c = await t.pool.query("SELECT title FROM mega_agent.cases WHERE user_id = 'tg:7002'");
    expect(c.rows).toEqual([{ title: 'Intake Session (Recovered)' }]);
    expect(stderr).toMatch(/ensure_case_exists\.case_missing/);
    await stopBot();
  });

  it('a failing update gets an apology and a logged error; the next update is served', async () => {
    const userId = 7003;
    await t.pool.query('ALTER TABLE mega_agent.cases RENAME TO cases_away');
    api.pushText(userId, '/intake_start');
    await api.waitFor(() => api.conversation(userId).length === 1);
    expect(api.conversation(userId)[0]!.text).toMatch(/Sorry, something went wrong/);
    expect(stderr).toMatch(/bot\.update_failed/);
    await t.pool.query('ALTER TABLE mega_agent.cases_away RENAME TO cases');
    api.pushText(userId, '/intake_start');
    await api.waitFor(() => api.conversation(userId).length === 2);
    expect(api.conversation(userId)[1]!.text).toMatch(/Welcome!/);
    await stopBot();
  });

  it('one user in order, several users at once; on SIGTERM every received update is handled once and confirmed', async () => {
    const users = [8001, 8002, 8003, 8004];
    for (const u of users) {
      api.pushText(u, '/intake_start');
      api.pushText(u, 'Ada Lovelace');
      api.pushText(u, 'ada@example.com');
    }
    await api.waitFor(() => users.every((u) => api.conversation(u).length === 3));
    for (const u of users) {
      const texts = api.conversation(u).map((m) => m.text!);
      expect(texts[0]).toMatch(/Welcome/);
      expect(texts[1]).toMatch(/\(2\/10\)/);
      expect(texts[2]).toMatch(/\(3\/10\)/);
    }
    const code = await stopBot();
    expect(code).toBe(0);
    expect(api.confirmedOffset).toBe(users.length * 3 + 1);
    const progress = await t.pool.query(
      "SELECT count(*)::int AS n FROM mega_agent.case_intake_progress WHERE current_step = 2 AND user_id LIKE 'tg:800%'",
    );
    expect(progress.rows[0].n).toBe(4);
  });
});

describe('caseguard bot, usage', () => {
  it('a token the Bot API refuses: exit 3, and the token is never printed', async () => {
    const api = new FakeTelegram('999:the-right-one');
    const root = await api.start();
    const t = await createTestDatabase();
    try {
      const r = await runCli(['bot', '--api-root', root, '--database-url', t.url], { env: { TELEGRAM_BOT_TOKEN: TOKEN } });
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/401/);
      expect(`${r.stdout}${r.stderr}`).not.toContain('SECRET');
    } finally {
      await api.stop();
      await t.drop();
    }
  });

  it('without --console or a token: exit 2', async () => {
    const r = await runCli(['bot', '--database-url', 'postgres://127.0.0.1:1/x']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/TELEGRAM_BOT_TOKEN/);
  });
});
