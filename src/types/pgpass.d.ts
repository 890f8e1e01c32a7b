/** pgpass's helper (the .pgpass reader the pg driver uses); it ships no types. */
declare module 'pgpass/lib/helper.js' {
  import type { Stats } from 'node:fs';
  import type { Readable } from 'node:stream';
  interface ConnInfo {
    host: string;
    port: string;
    database: string;
    user: string;
  }
  const helper: {
    getFileName(env?: NodeJS.ProcessEnv): string;
    usePgPass(stats: Stats, file: string): boolean;
    getPassword(info: ConnInfo, stream: Readable, cb: (password: string | undefined) => void): void;
  };
  export default helper;
}
