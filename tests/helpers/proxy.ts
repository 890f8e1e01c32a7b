/**
 * A TCP proxy in front of a server that can freeze: it stops forwarding in both directions but
 * keeps every socket open (and accepts new ones, which it freezes too), the way a network path
 * fails when a middlebox stops passing traffic without resetting anything. It goes on reading
 * (and so acknowledging) what arrives and holds it, so TCP keepalives see a live peer: only
 * caseguard's own deadlines notice.
 */
import net from 'node:net';

export interface FreezingProxy {
  port: number;
  /** The URL with the proxy in place of the server's host and port. */
  via(url: string): string;
  freeze(): void;
  readonly frozen: boolean;
  thaw(): void;
  close(): Promise<void>;
}

export async function startProxy(target: { host: string; port: number }): Promise<FreezingProxy> {
  let frozen = false;
  const sockets = new Set<net.Socket>();
  /** What arrived while frozen, per destination, forwarded on thaw. */
  const held = new Map<net.Socket, Buffer[]>();
  const forward = (from: net.Socket, to: net.Socket) =>
    from.on('data', (chunk: Buffer) => {
      if (frozen) held.set(to, [...(held.get(to) ?? []), chunk]);
      else to.write(chunk);
    });
  const server = net.createServer((client) => {
    const upstream = net.connect(target);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    forward(client, upstream);
    forward(upstream, client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    via: (url) => {
      const u = new URL(url);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    },
    freeze: () => {
      frozen = true;
    },
    get frozen() {
      return frozen;
    },
    thaw: () => {
      frozen = false;
      for (const [to, chunks] of held) for (const chunk of chunks) to.write(chunk);
      held.clear();
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
