// The workload application of a lab VM (what RabbitMQ / pegasus-pay are in the seeds): an HTTP server
// on 0.0.0.0:<port> answering every request with the VM's name. Runs as the lab unit `lab-app`.
import { createServer } from 'node:http';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? (process.argv[i + 1] as string) : fallback;
}

const vmName = arg('name', 'vm');
const port = Number(arg('port', '8080'));

const server = createServer((req, res) => {
  const body = `${vmName}\n`;
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), 'x-lab-vm': vmName });
  res.end(req.method === 'HEAD' ? undefined : body);
});
server.listen(port, '0.0.0.0', () => {
  process.stdout.write(`lab-app ${vmName} listening on 0.0.0.0:${port}\n`);
});
const shutdown = (): void => {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
