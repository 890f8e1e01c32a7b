/**
 * The exporter's HTTP server: /metrics (Prometheus text format) and /healthz. Values are
 * refreshed on a timer (--interval) or on each scrape (--refresh-on-scrape), never two
 * refreshes at once: a scrape that arrives during a refresh waits for that one. A failed refresh
 * keeps the last values and sets caseguard_up 0; the server keeps answering.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { errorClassOf, safeMessage, UsageError, type ErrorClass, type Logger, type Snapshot } from '../core/index.js';
import type { Registry } from 'prom-client';
import { createMetrics } from './metrics.js';

export interface ExporterOptions {
  /** Reads one snapshot (one read-only transaction, its own connection, released after). */
  read: () => Promise<Snapshot>;
  host: string;
  port: number;
  /** Refresh every intervalMs; 'scrape': refresh on each scrape instead. */
  refresh: { intervalMs: number } | 'scrape';
  log: Logger;
  /** Registers more metrics beside the exporter's (caseguard watch's own). */
  extend?: (registry: Registry) => void;
  /** The checks as they are now, set at every scrape (caseguard watch): refreshes then read only the rest. */
  checks?: () => Snapshot['scan'];
}

export interface Exporter {
  /** Where it listens (the real port when port 0 was asked for). */
  url: string;
  /** Stops listening, stops refreshing and waits for a refresh under way. */
  close(): Promise<void>;
}

export async function startExporter(options: ExporterOptions): Promise<Exporter> {
  const { log } = options;
  const metrics = createMetrics();
  options.extend?.(metrics.registry);
  let running: Promise<void> | undefined;
  let lastError: ErrorClass | undefined;
  let lastSuccess: Date | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const refreshOnce = async () => {
    const t0 = performance.now();
    try {
      const snapshot = await options.read();
      lastSuccess = new Date();
      lastError = undefined;
      metrics.apply(snapshot, lastSuccess);
      log.debug({ event: 'exporter.refreshed', duration_ms: snapshot.durationMs });
    } catch (error) {
      const errorClass = errorClassOf(error);
      // A class and a message without query parameters: the exporter keeps serving the last values.
      if (lastError !== errorClass)
        log.warn(
          { event: 'exporter.refresh_failed', error: errorClass, err: safeMessage(error) },
          'refresh failed; serving the last values',
        );
      lastError = errorClass;
      metrics.failed(errorClass);
    } finally {
      metrics.took((performance.now() - t0) / 1000);
    }
  };
  /** The refresh under way, or a new one: never two at once. */
  const refresh = () => {
    running ??= refreshOnce().finally(() => {
      running = undefined;
    });
    return running;
  };
  const schedule = () => {
    if (closed || options.refresh === 'scrape') return;
    timer = setTimeout(() => void refresh().then(schedule), options.refresh.intervalMs);
  };

  const server = http.createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://exporter').pathname;
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      void (options.refresh === 'scrape' ? refresh() : Promise.resolve())
        .then(() => {
          if (options.checks) metrics.applyChecks(options.checks());
          return metrics.registry.metrics();
        })
        .then(
          (body) =>
            response.writeHead(200, { 'content-type': metrics.registry.contentType }).end(request.method === 'HEAD' ? undefined : body),
          (error: unknown) => {
            log.error({ event: 'exporter.metrics_failed', err: safeMessage(error) });
            response.writeHead(500).end();
          },
        );
      return;
    }
    if (path === '/healthz') {
      // The exporter is alive and answering; whether the database is, is caseguard_up.
      const body = JSON.stringify({
        status: lastError ? 'degraded' : 'ok',
        error: lastError ?? null,
        lastRefresh: lastSuccess?.toISOString() ?? null,
      });
      response.writeHead(200, { 'content-type': 'application/json' }).end(`${body}\n`);
      return;
    }
    if (path === '/') {
      response
        .writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
        .end(
          '<html><body><h1>caseguard exporter</h1><p><a href="/metrics">/metrics</a> <a href="/healthz">/healthz</a></p></body></html>\n',
        );
      return;
    }
    response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: /metrics and /healthz are served\n');
  });
  server.keepAliveTimeout = 5000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      const why = { EADDRINUSE: 'the address is in use', EACCES: 'not permitted', EADDRNOTAVAIL: 'no such local address' }[
        error.code ?? ''
      ];
      reject(
        new UsageError(
          `cannot listen on ${options.host}:${options.port}: ${why ?? error.message}; choose another with --listen HOST:PORT`,
          { cause: error },
        ),
      );
    });
    server.listen(options.port, options.host, resolve);
  });
  // The first values before the first scrape; on the timer from then on.
  await refresh();
  schedule();
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    close: async () => {
      closed = true;
      if (timer) clearTimeout(timer);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      await running;
    },
  };
}
