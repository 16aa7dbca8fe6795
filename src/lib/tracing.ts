import type { Telemetry } from "bullmq";
import { z } from "zod";
import { configSchema } from "./config.js";
import { ConfigError } from "./errors.js";

/**
 * OpenTelemetry traces from an enqueue through the worker's `process` span
 * down to each PostgreSQL statement. Off unless OTEL_EXPORTER_OTLP_ENDPOINT
 * is set: then `startTracing()` loads the SDK (dynamic imports only, so
 * `import "dbjobs"` loads no OTel module), exports OTLP/HTTP JSON, instruments
 * `pg` and hands BullMQ a `bullmq-otel` telemetry that every Queue, Worker
 * and QueueEvents of a queue store takes (queue-store.ts). The trace context
 * travels in the job's `opts.telemetry.metadata` (W3C traceparent).
 *
 * `pg` is patched as it is loaded: call this before anything imports pg or
 * Prisma (the CLI does, before it loads its commands).
 */

export interface TracingSettings {
  endpoint: string | undefined;
  serviceName: string | undefined;
  scheduleDelayMs: number;
}

const tracingSchema = z.object({
  OTEL_EXPORTER_OTLP_ENDPOINT: configSchema.shape.OTEL_EXPORTER_OTLP_ENDPOINT,
  OTEL_SERVICE_NAME: configSchema.shape.OTEL_SERVICE_NAME,
  OTEL_BSP_SCHEDULE_DELAY: configSchema.shape.OTEL_BSP_SCHEDULE_DELAY,
});

/** The tracing variables of `env`, validated like the rest of the config; throws a ConfigError naming the variable. */
export function tracingSettings(env: NodeJS.ProcessEnv = process.env): TracingSettings {
  const present = Object.fromEntries(Object.entries(env).filter(([name, value]) => name in tracingSchema.shape && value !== undefined && value !== ""));
  const parsed = tracingSchema.safeParse(present);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`);
    throw new ConfigError(`Invalid environment: ${problems.join("; ")}. Fix these variables and start again.`);
  }
  return {
    endpoint: parsed.data.OTEL_EXPORTER_OTLP_ENDPOINT,
    serviceName: parsed.data.OTEL_SERVICE_NAME,
    scheduleDelayMs: parsed.data.OTEL_BSP_SCHEDULE_DELAY,
  };
}

export interface StartTracingOptions {
  /** service.name when OTEL_SERVICE_NAME is unset. @defaultValue dbjobs */
  serviceName?: string;
  env?: NodeJS.ProcessEnv;
}

export interface Tracing {
  /** False when OTEL_EXPORTER_OTLP_ENDPOINT is unset: nothing was loaded and nothing is exported. */
  readonly enabled: boolean;
  /** The service.name spans carry, when enabled. */
  readonly serviceName: string | undefined;
  /** Exports the spans still buffered and stops exporting. */
  shutdown(): Promise<void>;
}

interface Started {
  telemetry: Telemetry;
  serviceName: string;
  shutdown: () => Promise<void>;
}

let started: Promise<Started | undefined> | undefined;
/** The running tracing, for the synchronous look-ups of queue-store.ts. */
let current: Started | undefined;

/** Starts tracing once per process (later calls return the first one's result). */
export async function startTracing(options: StartTracingOptions = {}): Promise<Tracing> {
  started ??= start(options).catch((err: unknown) => {
    started = undefined;
    throw err;
  });
  const running = await started;
  return { enabled: running !== undefined, serviceName: running?.serviceName, shutdown: shutdownTracing };
}

/** The telemetry every BullMQ object takes, once tracing has started; else undefined (BullMQ then traces nothing). */
export function queueTelemetry(): Telemetry | undefined {
  return current?.telemetry;
}

/** BullMQ's SpanKind.PRODUCER, by value: importing the enum would load bullmq in producers that trace nothing. */
const producerSpanKind = 3;

/**
 * For enqueues that bypass Queue.add (in the caller's transaction): a PRODUCER
 * span named as BullMQ names its own (`add <queue>.<name>`), with `enqueue`
 * given the metadata to store in the job's `opts.telemetry`, so the worker's
 * `process` span joins this trace. Without tracing it just runs `enqueue`.
 */
export async function traceEnqueue<T extends { id: string }>(queue: string, name: string, enqueue: (metadata: string | undefined) => Promise<T>): Promise<T> {
  const telemetry = queueTelemetry();
  if (!telemetry) return enqueue(undefined);
  const { tracer, contextManager } = telemetry;
  const span = tracer.startSpan(`add ${queue}.${name}`, { kind: producerSpanKind }, contextManager.active());
  span.setAttributes({ "bullmq.queue.name": queue, "bullmq.queue.operation": "add", "bullmq.job.name": name, "dbjobs.enqueue.transactional": true });
  try {
    const spanContext = span.setSpanOnContext(contextManager.active());
    const added = await contextManager.with(spanContext, () => enqueue(contextManager.getMetadata(spanContext)));
    span.setAttributes({ "bullmq.job.id": added.id });
    return added;
  } catch (err) {
    span.recordException(err as Error);
    throw err;
  } finally {
    span.end();
  }
}

/** Flushes and stops tracing; does nothing when it never started. Long-running processes call it on shutdown. */
export async function shutdownTracing(): Promise<void> {
  const running = await started;
  started = undefined;
  current = undefined;
  await running?.shutdown();
}

async function start(options: StartTracingOptions): Promise<Started | undefined> {
  const settings = tracingSettings(options.env);
  if (!settings.endpoint) return undefined;
  const serviceName = settings.serviceName ?? options.serviceName ?? "dbjobs";
  const [
    api,
    { AsyncLocalStorageContextManager },
    core,
    resources,
    sdk,
    { OTLPTraceExporter },
    { registerInstrumentations },
    { PgInstrumentation },
    { BullMQOtel },
  ] = await Promise.all([
    import("@opentelemetry/api"),
    import("@opentelemetry/context-async-hooks"),
    import("@opentelemetry/core"),
    import("@opentelemetry/resources"),
    import("@opentelemetry/sdk-trace"),
    import("@opentelemetry/exporter-trace-otlp-http"),
    import("@opentelemetry/instrumentation"),
    import("@opentelemetry/instrumentation-pg"),
    import("bullmq-otel"),
  ]);
  const resource = resources
    .defaultResource()
    .merge(resources.detectResources({ detectors: [resources.processDetector, resources.envDetector] }))
    .merge(resources.resourceFromAttributes({ "service.name": serviceName }));
  // The exporter reads the standard OTEL_EXPORTER_OTLP_* variables itself (endpoint + /v1/traces, headers, timeout).
  const processor = new sdk.BatchSpanProcessor({ exporter: new OTLPTraceExporter(), scheduledDelayMillis: settings.scheduleDelayMs });
  const provider = new sdk.TracerProvider({ resource, spanProcessors: [processor] });
  // An application that registered its own SDK keeps it: dbjobs then only adds BullMQ's spans, to that SDK.
  const registered = api.trace.setGlobalTracerProvider(provider);
  let disableInstrumentations = () => {};
  if (registered) {
    api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    api.propagation.setGlobalPropagator(new core.W3CTraceContextPropagator());
    // Statement text only: parameter values may hold patients' data.
    disableInstrumentations = registerInstrumentations({
      tracerProvider: provider,
      instrumentations: [new PgInstrumentation({ requireParentSpan: true, enhancedDatabaseReporting: false })],
    });
  } else {
    await provider.shutdown();
  }
  const running: Started = {
    telemetry: new BullMQOtel({ tracerName: "dbjobs" }) as unknown as Telemetry,
    serviceName,
    shutdown: async () => {
      process.off("beforeExit", flushOnExit);
      disableInstrumentations();
      if (registered) {
        await provider.shutdown();
        api.trace.disable();
        api.context.disable();
        api.propagation.disable();
      }
    },
  };
  // A one-shot process (an app script, `dbjobs enqueue`) ends with its spans still buffered.
  const flushOnExit = () => void provider.forceFlush().catch(() => undefined);
  if (registered) process.once("beforeExit", flushOnExit);
  current = running;
  return running;
}
