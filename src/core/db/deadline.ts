/**
 * Client-side bounds on a network that goes silent: a socket that stops answering without
 * closing stays open for as long as the kernel's keepalives take to notice (minutes), so the
 * protocol's short statements carry a deadline, and a connection past it is cut.
 */
import type pg from 'pg';

/**
 * Ends a connection at once, without a word to the server: for a socket that has gone silent
 * (a frozen network answers nothing, so a polite end would wait forever). Its pending queries fail.
 */
export function destroyConnection(client: pg.ClientBase): void {
  (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
}

/**
 * The promise's value, or an error once deadlineMs passes without one (onMiss runs first: it
 * ends what would otherwise wait forever). A client-side deadline for a statement expected to be short.
 */
export async function withinDeadline<T>(promise: Promise<T>, deadlineMs: number, onMiss: () => void = () => undefined): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const missed = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onMiss();
      reject(new Error(`no answer within ${Math.round(deadlineMs / 1000)}s: the connection went silent`));
    }, deadlineMs);
    timer.unref();
  });
  try {
    return await Promise.race([promise, missed]);
  } finally {
    clearTimeout(timer);
  }
}
