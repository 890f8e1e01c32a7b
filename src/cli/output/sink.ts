/**
 * Where a command's results go: stdout, or a file written atomically (a temporary file in the
 * same folder, renamed into place when complete), so a Prometheus textfile collector or a CI
 * step never reads half a report. Writes wait when the stream is full: memory stays bounded.
 */
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '../../core/index.js';

export interface Sink {
  write(text: string): Promise<void>;
  /** Completes the output (for a file: renames it into place). */
  commit(): Promise<void>;
  /** Drops a file that was not completed. */
  discard(): Promise<void>;
}

async function writeTo(stream: NodeJS.WritableStream, text: string): Promise<void> {
  if (!stream.write(text)) await once(stream, 'drain');
}

export function stdoutSink(): Sink {
  return { write: (text) => writeTo(process.stdout, text), commit: async () => undefined, discard: async () => undefined };
}

/** Fails at once (exit 2, before any work) when the file could not be written. */
export function assertCanWriteFile(final: string): void {
  try {
    if (fs.statSync(final, { throwIfNoEntry: false })?.isDirectory()) throw Object.assign(new Error('is a folder'), { code: 'EISDIR' });
    fs.accessSync(path.dirname(final), fs.constants.W_OK);
  } catch (error) {
    throw new UsageError(`cannot write ${final}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

export function fileSink(target: string): Sink {
  const final = path.resolve(target);
  assertCanWriteFile(final);
  const temporary = path.join(path.dirname(final), `.${path.basename(final)}.${process.pid}.tmp`);
  let failure: Error | undefined;
  const stream = fs.createWriteStream(temporary, { flags: 'wx' });
  stream.on('error', (error) => {
    failure = new UsageError(`cannot write ${final}: ${(error as NodeJS.ErrnoException).code ?? error.message}`);
  });
  const check = () => {
    if (failure) throw failure;
  };
  const closed = () => new Promise<void>((resolve, reject) => stream.end((error?: Error | null) => (error ? reject(error) : resolve())));
  return {
    write: async (text) => {
      check();
      await Promise.race([writeTo(stream, text), once(stream, 'error')]);
      check();
    },
    commit: async () => {
      check();
      await closed();
      check();
      await fs.promises.rename(temporary, final).catch(async (error: NodeJS.ErrnoException) => {
        await fs.promises.rm(temporary, { force: true });
        throw new UsageError(`cannot write ${final}: ${error.code ?? error.message}`);
      });
    },
    discard: async () => {
      await closed().catch(() => undefined);
      await fs.promises.rm(temporary, { force: true });
    },
  };
}
