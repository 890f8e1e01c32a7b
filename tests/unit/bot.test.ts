import { describe, expect, it } from 'vitest';
import { KeyedQueue } from '../../src/bot/keyedQueue.js';
import { redactToken } from '../../src/bot/telegram.js';

describe('the bot transport helpers', () => {
  it('redacts every occurrence of the token', () => {
    const token = '123:ABC';
    expect(redactToken(`request to https://api.telegram.org/bot${token}/getMe failed (${token})`, token)).toBe(
      'request to https://api.telegram.org/bot<token>/getMe failed (<token>)',
    );
  });

  it('runs one key in order and different keys concurrently; drain waits for all', async () => {
    const queue = new KeyedQueue();
    const log: string[] = [];
    let running = 0;
    let maxRunning = 0;
    const task = (key: string, n: number, ms: number) => async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await new Promise((r) => setTimeout(r, ms));
      log.push(`${key}${n}`);
      running--;
    };
    queue.push('a', task('a', 1, 30));
    queue.push('a', task('a', 2, 1));
    queue.push('b', task('b', 1, 5));
    queue.push('a', async () => {
      throw new Error('a failing task does not stop the queue');
    });
    queue.push('a', task('a', 3, 1));
    await queue.drain();
    expect(log.filter((l) => l.startsWith('a'))).toEqual(['a1', 'a2', 'a3']);
    expect(log.indexOf('b1')).toBeLessThan(log.indexOf('a1'));
    expect(maxRunning).toBe(2);
    expect(queue.size).toBe(0);
  });
});
