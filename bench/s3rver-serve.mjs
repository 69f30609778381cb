// bench:stages' S3 server in a process of its own (s3rver on 127.0.0.1, port 0), so the bench's
// own process does not share an event loop with it: creates the buckets named on the command
// line, prints the port as one line on stdout, runs until killed.
//   node bench/s3rver-serve.mjs DIR BUCKET...
import S3rver from 's3rver';

const [directory, ...buckets] = process.argv.slice(2);
const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  silent: true,
  directory,
  configureBuckets: buckets.map((name) => ({ name, configs: [] })),
});
const { port } = await server.run();
process.stdout.write(`${port}\n`);
process.on('SIGTERM', () => server.close().then(() => process.exit(0)));
