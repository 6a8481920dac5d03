// A Node service instrumented with OpenTelemetry's JavaScript SDK, as its
// users write one (t_tracing_node.sh): the SDK's http instrumentation makes
// a server span for each request it serves and a client span for each call
// it makes, propagates W3C trace context on those calls, and exports to an
// OTLP/HTTP (JSON) endpoint.
//
//   node server.js HOST PORT UPSTREAM_URL OTLP_URL
//
// GET /call: calls UPSTREAM_URL and answers with what it answered.
const { NodeTracerProvider, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-node');
const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http');
const { registerInstrumentations } = require('@opentelemetry/instrumentation');
const { HttpInstrumentation } = require('@opentelemetry/instrumentation-http');
const { resourceFromAttributes } = require('@opentelemetry/resources');

const [host, port, upstream, otlp] = process.argv.slice(2);
const provider = new NodeTracerProvider({
  resource: resourceFromAttributes({ 'service.name': 'node-shop' }),
  spanProcessors: [new SimpleSpanProcessor(new OTLPTraceExporter({ url: otlp }))],
});
provider.register();
registerInstrumentations({ instrumentations: [new HttpInstrumentation()] });

const http = require('http');   // after the instrumentation, as the SDK's guide says
http.createServer((req, res) => {
  if (req.url !== '/call') {
    res.end('node\n');
    return;
  }
  http.get(upstream, (up) => {
    let body = '';
    up.on('data', (d) => { body += d; });
    up.on('end', () => res.end(body));
  }).on('error', (e) => { res.statusCode = 502; res.end(String(e)); });
}).listen(Number(port), host, () => console.log('listening'));

process.on('SIGTERM', () => provider.shutdown().finally(() => process.exit(0)));
